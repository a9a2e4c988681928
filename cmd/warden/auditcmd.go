package main

import (
	"context"
	"fmt"
	"io"
)

// cmdAudit dispatches `warden audit report|verify`.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("want a subcommand: report or verify")
	}
	switch args[0] {
	case "report":
		return cmdAuditReport(ctx, args[1:], stdout, stderr)
	case "verify":
		return cmdAuditVerify(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown subcommand %q: want report or verify", args[0])
}
