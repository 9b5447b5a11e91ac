package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/image/source"
)

// registryJobs is how many blobs an import from a registry downloads at
// once, as containers/image does.
const registryJobs = 3

// registryFlags are skopeo's flags for the docker:// transport.
var registryFlags = []cli.Flag{
	&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "docker://: require HTTPS and verify certificates (false: plain HTTP or unverified TLS)"},
	&cli.StringFlag{Name: "creds", Usage: "docker://: `USER[:PASSWORD]` for the registry"},
	&cli.StringFlag{Name: "authfile", Usage: "docker://: auth file (default $REGISTRY_AUTH_FILE, then $XDG_RUNTIME_DIR/containers/auth.json, then ~/.docker/config.json)"},
}

// registryOptions reads registryFlags.
func registryOptions(c *cli.Context) source.RegistryOptions {
	return source.RegistryOptions{
		Insecure: !c.Bool("tls-verify"),
		Creds:    c.String("creds"),
		AuthFile: c.String("authfile"),
	}
}
