package main

import (
	"bufio"

	"github.com/urfave/cli/v2"
)

// stdout returns a buffered writer on the app's output.
func stdout(c *cli.Context) *bufio.Writer { return bufio.NewWriterSize(c.App.Writer, 64<<10) }
