package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/config"
)

const auditReportUsage = `usage:
  warden audit report [--html FILE] [--top N] [--config FILE] [--s3-endpoint URL] [--s3-region R] [--s3-path-style]
                      [--exposure] [--account A] [--vpc V] [--subnet S] [--app APP] [--model M]
                      [--finding-type T] [--from TIME] [--to TIME] SRC...
      summarise audit records: calls per account, app, model and decision, denial reasons, guardrail
      findings, tokens and estimated cost per app, the access paths (account -> VPC/subnet -> app ->
      model), calls over time; text tables on stdout, and with --html one self-contained page with
      charts (no external resources)
      --exposure, or any of the filters, adds the exposure view: every path the matching records took
      and their record ids (all filters must match; TIME is RFC 3339 or YYYY-MM-DD, --from inclusive,
      --to exclusive)
      SRC: a file (plain or .gz), a directory (every *.jsonl, *.json, *.log, *.gz under it) or
      s3://bucket/prefix (credentials from the default AWS chain)
      --config: the apps' day and month budgets (apps[].budgets) in it are reported with each app's use and
      what remains in the UTC day and month of the last call
`

func cmdAuditReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditReportUsage); fs.PrintDefaults() }
	htmlPath := fs.String("html", "", "also write the report as one HTML page to FILE (mode 0600)")
	top := fs.Int("top", 10, "denial reasons and models to list in the charts")
	cfgPath := fs.String("config", "", "a Warden config whose apps' day and month budgets to report use and remaining budget against")
	s3 := addS3SourceFlags(fs)
	exposure := fs.Bool("exposure", false, "add the exposure view (implied by any filter below)")
	var f audit.ExposureFilter
	fs.StringVar(&f.Account, "account", "", "exposure view: the caller's AWS account")
	fs.StringVar(&f.VPC, "vpc", "", "exposure view: the caller's VPC id")
	fs.StringVar(&f.Subnet, "subnet", "", "exposure view: the caller's subnet id")
	fs.StringVar(&f.App, "app", "", "exposure view: the app")
	fs.StringVar(&f.Model, "model", "", "exposure view: the model (canonical or as requested)")
	fs.StringVar(&f.FindingType, "finding-type", "", "exposure view: a guard finding's type (EMAIL) or guard/type (pii-block/EMAIL)")
	from := fs.String("from", "", "exposure view: calls at or after TIME (RFC 3339 or YYYY-MM-DD, UTC)")
	to := fs.String("to", "", "exposure view: calls before TIME (RFC 3339 or YYYY-MM-DD, UTC)")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("want at least one audit source (a file, a directory or s3://bucket/prefix)")
	}
	if *top <= 0 {
		return fmt.Errorf("--top %d: want a positive number", *top)
	}
	opts := audit.ReportOptions{TopReasons: *top, TopModels: *top}
	var err error
	if f.From, err = parseReportTime("--from", *from); err != nil {
		return err
	}
	if f.To, err = parseReportTime("--to", *to); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return fmt.Errorf("--from %s is not before --to %s: the range is empty", *from, *to)
	}
	if *exposure || f != (audit.ExposureFilter{}) {
		opts.Exposure = &f
	}
	if *cfgPath != "" {
		cfg, err := config.LoadConfig(*cfgPath)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		opts.Budgets = map[string]audit.AppBudget{}
		for _, a := range cfg.Apps {
			b := a.Budgets
			if b.TokensPerDay > 0 || b.CostPerDayUSD > 0 || b.CostPerMonthUSD > 0 {
				opts.Budgets[a.Name] = audit.AppBudget{TokensPerDay: b.TokensPerDay, CostPerDayUSD: b.CostPerDayUSD, CostPerMonthUSD: b.CostPerMonthUSD}
			}
		}
	}
	r, err := audit.BuildReport(ctx, fs.Args(), s3.options(), opts)
	if err != nil {
		return err
	}
	if *htmlPath != "" {
		var page bytes.Buffer
		if err := r.WriteHTML(&page); err != nil {
			return err
		}
		// 0600: the page names apps, accounts and models.
		if err := os.WriteFile(*htmlPath, page.Bytes(), 0o600); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}
	return r.WriteText(stdout)
}

// parseReportTime reads a --from or --to value: RFC 3339, or a UTC date.
func parseReportTime(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2026-12-01T08:00:00Z) or a date (2026-12-01)", flagName, v)
	}
	return t, nil
}
