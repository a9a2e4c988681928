package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/config"
)

const auditReportUsage = `usage:
  warden audit report [--html FILE] [--top N] [--config FILE] [--s3-endpoint URL] [--s3-region R] [--s3-path-style] SRC...
      summarise audit records: calls per account, app, model and decision, denial reasons, guardrail
      findings, tokens and estimated cost per app, calls over time; text tables on stdout, and with
      --html one self-contained page with charts (no external resources)
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
	if err := fs.Parse(args); err != nil {
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
