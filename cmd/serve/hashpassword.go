package serve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/smtpd"
)

// HashOptions of `relayctl serve hash-password`.
type HashOptions struct {
	F *cmdutil.Factory
}

// NewCmdHashPassword is `relayctl serve hash-password`.
func NewCmdHashPassword(f *cmdutil.Factory, runF func(*HashOptions) error) *cobra.Command {
	o := &HashOptions{F: f}
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Print a bcrypt hash for serve.users[].password_hash",
		Long: `Read a password and print its bcrypt hash, for the password_hash of a user in
the serve: section of the config file.

On a terminal the password is asked for twice without echo; otherwise the
first line of stdin is the password (so it never appears on a command line or
in the shell history). Exit code 2 when the password is empty or the two
entries differ.`,
		Example: `  relayctl serve hash-password
  printf '%s\n' "$APP_PASSWORD" | relayctl serve hash-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return hashRun(o)
		},
	}
}

func hashRun(o *HashOptions) error {
	pw, err := o.readPassword()
	if err != nil {
		return err
	}
	h, err := smtpd.HashPassword(pw)
	if err != nil {
		return cmdutil.Usagef("%v", err)
	}
	_, err = fmt.Fprintln(o.F.IO.Out, h)
	return err
}

func (o *HashOptions) readPassword() (string, error) {
	if f, ok := o.F.IO.In.(*os.File); ok && o.F.IO.StdinTTY && term.IsTerminal(int(f.Fd())) {
		ask := func(prompt string) (string, error) {
			fmt.Fprint(o.F.IO.ErrOut, prompt)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(o.F.IO.ErrOut)
			return string(b), err
		}
		a, err := ask("Password: ")
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		b, err := ask("Again: ")
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		if a != b {
			return "", cmdutil.Usagef("the passwords differ")
		}
		if a == "" {
			return "", cmdutil.Usagef("empty password")
		}
		return a, nil
	}
	line, err := bufio.NewReader(o.F.IO.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", cmdutil.Usagef("empty password on stdin")
	}
	return line, nil
}
