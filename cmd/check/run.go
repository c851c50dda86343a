package check

import (
	"context"
	"io"

	"github.com/relayctl/relayctl/cmd/cmdutil"
	"github.com/relayctl/relayctl/pkg/dnsclient"
	"github.com/relayctl/relayctl/pkg/report"
)

// runCheck is the shape every single-target check shares: ask the
// configured resolver, let check fill a report, drop the findings the user
// ignores (flag, else the ignore config key), and render the result with
// its findings and summary (or the JSON envelope).
func runCheck[T any](ctx context.Context, f *cmdutil.Factory, command, target string, ignore []string,
	check func(context.Context, dnsclient.Resolver, *report.Report) T,
	write func(io.Writer, *cmdutil.Styles, T)) error {
	res, err := f.Resolver()
	if err != nil {
		return err
	}
	rep := report.New(command, target)
	result := check(ctx, res, rep)
	rep.Result = result
	rep.Ignore(dmIgnore(f, ignore))
	return f.Output(rep, func(w io.Writer, st *cmdutil.Styles) error {
		write(w, st, result)
		st.WriteFindings(w, rep.Findings)
		st.WriteSummary(w, rep)
		return nil
	})
}
