package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/sign"
)

var _ = register(&cli.Command{
	Name:      "sign",
	Usage:     "sign commits, verify or delete their signatures (ed25519 and GPG, in ostree's formats)",
	ArgsUsage: "COMMIT...",
	Description: `ed25519, as 'ostree sign': --keys-file names a file of base64 keys, one a
line (64-byte secret keys sign; 32-byte public keys, or the public half of
a secret key, verify and delete). Signing again with the same key adds
nothing.

GPG, as 'ostree gpg-sign': --gpg-sign=KEYID [--gpg-homedir=DIR] signs by
running gpg, so secret keys, agents and passphrases stay where gpg keeps
them. --delete --gpg-sign=KEYID removes that key's signatures.

--verify checks with --keys-file (ed25519), with --keyring=FILE or
--gpg-verify-remote=NAME (GPG: the keys 'ostree remote add --gpg-import'
stored), or with --remote=NAME: the remote's whole policy (gpg-verify,
sign-verify and their keys), as pull applies it. It exits 1 with the
reason when a commit does not verify.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "sign-type", Aliases: []string{"s"}, Value: "ed25519", Usage: "signature type: ed25519"},
		&cli.StringFlag{Name: "keys-file", Usage: "file of base64 ed25519 keys, one a line"},
		&cli.BoolFlag{Name: "verify", Usage: "verify the signatures instead of signing"},
		&cli.BoolFlag{Name: "delete", Aliases: []string{"d"}, Usage: "delete the signatures made by the given keys"},
		gpgSignFlag(), gpgHomedirFlag(),
		&cli.StringSliceFlag{Name: "keyring", Usage: "--verify: GPG public keys (armoured or binary) to trust"},
		&cli.StringFlag{Name: "gpg-verify-remote", Usage: "--verify: trust the GPG keys of remote NAME"},
		&cli.StringFlag{Name: "remote", Usage: "--verify: apply remote NAME's verification policy"},
	},
	Action: withRepo(runSign),
})

func runSign(c *cli.Context, r *repo.Repo) error {
	if c.NArg() == 0 {
		return usageError(c, "sign: want a COMMIT")
	}
	if t := c.String("sign-type"); t != "ed25519" {
		return usageError(c, "sign: --sign-type %q: only ed25519 is implemented (GPG: --gpg-sign)", t)
	}
	if c.Bool("verify") && c.Bool("delete") {
		return usageError(c, "sign: --verify and --delete exclude each other")
	}
	var keys *sign.Ed25519Keys
	if f := c.String("keys-file"); f != "" {
		var err error
		if keys, err = sign.ReadEd25519Keys(f); err != nil {
			return err
		}
	}
	gpgIDs := c.StringSlice("gpg-sign")
	var commits []repo.Checksum
	for _, rev := range c.Args().Slice() {
		sum, err := r.Resolve(rev)
		if err != nil {
			return err
		}
		commits = append(commits, sum)
	}
	ctx, stop := interruptible(c)
	defer stop()
	switch {
	case c.Bool("verify"):
		return signVerify(ctx, c, r, keys, commits)
	case c.Bool("delete"):
		if keys == nil && len(gpgIDs) == 0 {
			return usageError(c, "sign --delete: give --keys-file or --gpg-sign=KEYID")
		}
		for _, sum := range commits {
			n := 0
			if keys != nil {
				d, err := sign.DeleteEd25519(ctx, r, sum, keys.Public)
				if err != nil {
					return err
				}
				n += d
			}
			for _, id := range gpgIDs {
				d, err := sign.DeleteGPG(ctx, r, sum, id)
				if err != nil {
					return err
				}
				n += d
			}
			fmt.Fprintf(c.App.Writer, "%s: signatures deleted: %d\n", sum, n)
		}
		return nil
	}
	if keys == nil && len(gpgIDs) == 0 {
		return usageError(c, "sign: give --keys-file=FILE (ed25519) or --gpg-sign=KEYID")
	}
	if keys != nil && len(keys.Secret) == 0 {
		return usageError(c, "sign: %s holds no secret (64-byte) ed25519 key", c.String("keys-file"))
	}
	for _, sum := range commits {
		if keys != nil {
			if err := sign.SignCommitEd25519(ctx, r, sum, keys.Secret); err != nil {
				return err
			}
		}
		if err := gpgSignCommit(ctx, c, r, sum); err != nil {
			return err
		}
	}
	return nil
}

func signVerify(ctx context.Context, c *cli.Context, r *repo.Repo, keys *sign.Ed25519Keys, commits []repo.Checksum) error {
	remote, gpgRemote, keyrings := c.String("remote"), c.String("gpg-verify-remote"), c.StringSlice("keyring")
	if keys == nil && remote == "" && gpgRemote == "" && len(keyrings) == 0 {
		return usageError(c, "sign --verify: give --keys-file, --keyring, --gpg-verify-remote or --remote")
	}
	v := sign.NewVerifier(r)
	var kr *sign.Keyring
	if gpgRemote != "" || len(keyrings) > 0 {
		kr = &sign.Keyring{}
		if gpgRemote != "" {
			k, err := v.GPGKeyring(gpgRemote)
			if err != nil {
				return err
			}
			kr.Add(k)
		}
		for _, f := range keyrings {
			k, err := sign.ReadKeyFile(f)
			if err != nil {
				return err
			}
			kr.Add(k)
		}
	}
	for _, sum := range commits {
		if remote != "" {
			data, err := sign.CommitBytes(r, sum)
			if err != nil {
				return err
			}
			m, err := r.ReadCommitMeta(sum)
			if err != nil {
				return err
			}
			if err := v.VerifyCommit(ctx, remote, sum, data, m); err != nil {
				return err
			}
		}
		if keys != nil {
			if err := sign.VerifyCommitEd25519(r, sum, keys.Public); err != nil {
				return err
			}
		}
		if kr != nil {
			if err := sign.VerifyCommitGPG(r, sum, kr, gpgRemote); err != nil {
				return err
			}
		}
		fmt.Fprintf(c.App.Writer, "%s: signatures verified\n", sum)
	}
	return nil
}

// gpgSignFlag and gpgHomedirFlag are the flags of the commands that sign
// what they write, as 'ostree commit --gpg-sign=KEYID --gpg-homedir=DIR'.
func gpgSignFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "gpg-sign", Usage: "sign the commit with this GPG key ID (repeatable; runs gpg)"}
}

func gpgHomedirFlag() cli.Flag {
	return &cli.StringFlag{Name: "gpg-homedir", Usage: "GnuPG home directory of the --gpg-sign keys"}
}

// gpgSignCommit signs sum with every --gpg-sign key of c. The commit is
// already stored: the signature covers its bytes, which exist only once
// the transaction wrote them; a failure leaves it unsigned and is reported.
func gpgSignCommit(ctx context.Context, c *cli.Context, r *repo.Repo, sum repo.Checksum) error {
	for _, id := range c.StringSlice("gpg-sign") {
		if err := sign.SignCommitGPG(ctx, r, sum, id, c.String("gpg-homedir")); err != nil {
			return err
		}
	}
	return nil
}
