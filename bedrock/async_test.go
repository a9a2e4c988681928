package bedrock

import (
	"strings"
	"testing"
)

func TestAsyncOutputURI(t *testing.T) {
	cases := []struct {
		body, want, err string
	}{
		{`{"modelId":"m","outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://b/p/"}}}`, "s3://b/p/", ""},
		{`{"outputDataConfig":{"s3OutputDataConfig":{"kmsKeyId":"k","s3Uri":"s3://b/x"}},"modelInput":{"s3Uri":"s3://evil/"}}`, "s3://b/x", ""},
		{`{"modelId":"m"}`, "", "missing"},
		{`{"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://a/","s3Uri":"s3://b/"}}}`, "", "ambiguous"},
		{`{"outputDataConfig":{"s3OutputDataConfig":{"S3Uri":"s3://a/"}}}`, "", "ambiguous"},
		{`{"outputDataConfig":{},"OutputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://a/"}}}`, "", "ambiguous"},
		{`{"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":5}}}`, "", "non-empty string"},
		{`{"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":""}}}`, "", "non-empty string"},
		{`{"outputDataConfig":[1]}`, "", "not inside"},
		{"\xff", "", "UTF-8"},
		{`{"outputDataConfig":`, "", "StartAsyncInvoke body"},
	}
	for _, tc := range cases {
		got, err := AsyncOutputURI([]byte(tc.body))
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: got %q, %v; want %q", tc.body, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err %v, want one mentioning %q", tc.body, err, tc.err)
		}
	}
}

func FuzzAsyncOutputURI(f *testing.F) {
	f.Add([]byte(`{"modelId":"amazon.nova-reel-v1:0","modelInput":{},"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://bucket/prefix/"}}}`))
	f.Add([]byte(`{"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://a/","s3Uri":"s3://b/"}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		uri, err := AsyncOutputURI(body)
		if err == nil && uri == "" {
			t.Fatal("success with an empty URI")
		}
	})
}
