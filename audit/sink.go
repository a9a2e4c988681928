package audit

import (
	"context"
	"time"
)

// Entry is one line as the spool holds it and sinks receive it: a call
// record or a chain checkpoint, already encoded and sealed by the hash
// chain. Sinks must write Line byte for byte (the chain's hashes cover
// those bytes) and must not keep Line after Write returns.
type Entry struct {
	ID   string    // unique per record: de-duplicate on it (delivery is at least once)
	Time time.Time // the record's time (partitions, log event timestamps)
	Line []byte    // one JSON object, no trailing newline
}

// Sink delivers batches of entries to where security teams read them.
// Write is called by one goroutine per sink, with batches in spool order;
// an error means nothing in the batch counts as delivered, and the batch
// (maybe with more entries) is offered again after a backoff, so a sink
// may see an entry twice and must not reorder within a batch.
type Sink interface {
	Name() string
	Write(ctx context.Context, batch []Entry) error
	Close() error
}
