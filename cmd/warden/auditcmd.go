package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/warden-egress/warden/audit"
)

// cmdAudit dispatches `warden audit report|verify`.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		var usage bytes.Buffer
		_ = writeHelp(ctx, &usage, []string{"audit"})
		return fmt.Errorf("a subcommand is required\n%s", usage.String())
	}
	switch args[0] {
	case "report":
		return cmdAuditReport(ctx, args[1:], stdout, stderr)
	case "verify":
		return cmdAuditVerify(ctx, args[1:], stdout, stderr)
	}
	return usageErrorf("unknown subcommand %q: want report or verify", args[0])
}

// s3SourceFlags are the flags `audit report` and `audit verify` share for
// s3:// sources.
type s3SourceFlags struct {
	endpoint, region *string
	pathStyle        *bool
}

func addS3SourceFlags(fs *flag.FlagSet) s3SourceFlags {
	return s3SourceFlags{
		endpoint:  fs.String("s3-endpoint", "", "S3 endpoint for s3:// sources (an S3-compatible store or a VPC endpoint); default: AWS"),
		region:    fs.String("s3-region", "", "region for s3:// sources; default: from the AWS config"),
		pathStyle: fs.Bool("s3-path-style", false, "path-style S3 addressing (MinIO and most S3-compatible stores)"),
	}
}

func (f s3SourceFlags) options() audit.SourceOptions {
	return audit.SourceOptions{S3: audit.S3SourceOptions{Endpoint: *f.endpoint, Region: *f.region, PathStyle: *f.pathStyle}}
}
