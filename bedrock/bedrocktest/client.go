package bedrocktest

import (
	"bytes"
	"io"
	"net/http"
)

// HTTPDoer is what the AWS SDKs call an HTTP client (aws.HTTPClient).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// BufferedClient wraps an SDK HTTP client (nil: a default *http.Client) so
// that request bodies reach net/http as in-memory readers.
//
// Why: smithy-go closes a request's body as soon as the response headers
// arrive. net/http writes a body it does not recognise as in-memory straight
// to the socket after flushing the headers, and then reads the body once more
// to check for extra data. Against a server as fast as a loopback emulator
// (or Warden in front of one) the response can arrive inside that window; the
// extra read then fails with io.EOF and the transport tears the connection
// down under the event stream still being read ("use of closed network
// connection"). An in-memory body is written in one piece after it was read
// whole, so the window does not exist. Real Bedrock answers far too slowly to
// hit it; tests and benchmarks on loopback hit it, mostly under -race.
func BufferedClient(c HTTPDoer) HTTPDoer {
	if c == nil {
		c = &http.Client{}
	}
	return bufferingClient{c}
}

type bufferingClient struct{ base HTTPDoer }

func (b bufferingClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return b.base.Do(r)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r2.ContentLength = int64(len(body))
	return b.base.Do(r2)
}
