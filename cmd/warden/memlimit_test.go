package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		limited bool
		err     bool
	}{
		{"max\n", 0, false, false},
		{"536870912\n", 536870912, true, false},
		{"  1048576  ", 1048576, true, false},
		{"9223372036854771712\n", 0, false, false}, // v1's unlimited
		{"4611686018427387904", 0, false, false},
		{"", 0, false, true},
		{"-1", 0, false, true},
		{"0", 0, false, true},
		{"12k", 0, false, true},
		{"99999999999999999999", 0, false, true},
	} {
		n, ok, err := parseCgroupLimit([]byte(tc.in))
		if n != tc.want || ok != tc.limited || (err != nil) != tc.err {
			t.Errorf("parseCgroupLimit(%q) = %d, %v, %v; want %d, %v, error %v", tc.in, n, ok, err, tc.want, tc.limited, tc.err)
		}
	}
}

func FuzzParseCgroupLimit(f *testing.F) {
	for _, s := range []string{"max\n", "536870912\n", "9223372036854771712\n", "", "-5", "1e9"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok, err := parseCgroupLimit(b)
		if err != nil && (ok || n != 0) {
			t.Fatalf("%q: error %v with a limit %d, %v", b, err, n, ok)
		}
		if ok && (n <= 0 || n >= 1<<62) {
			t.Fatalf("%q: limit %d out of range", b, n)
		}
		if ok {
			if m, _ := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); m != n {
				t.Fatalf("%q: limit %d, the file says %d", b, n, m)
			}
		}
	})
}

func TestMemoryLimitFor(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		root := t.TempDir()
		for f, s := range files {
			p := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	noEnv := func(string) (string, bool) { return "", false }
	withEnv := func(k string) (string, bool) { return "400MiB", k == "GOMEMLIMIT" }
	emptyEnv := func(k string) (string, bool) { return "", k == "GOMEMLIMIT" }
	offEnv := func(k string) (string, bool) { return "off", k == "GOMEMLIMIT" }
	for _, tc := range []struct {
		name  string
		files map[string]string
		ratio float64
		env   func(string) (string, bool)
		want  int64
		err   bool
	}{
		{"cgroup v2", map[string]string{"sys/fs/cgroup/memory.max": "1000000000\n"}, 0.9, noEnv, 900000000, false},
		{"cgroup v2, no limit", map[string]string{"sys/fs/cgroup/memory.max": "max\n"}, 0.9, noEnv, 0, false},
		{"cgroup v1", map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "2000000000\n"}, 0.5, noEnv, 1000000000, false},
		{"cgroup v1, no limit", map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0.9, noEnv, 0, false},
		{"no cgroup files", nil, 0.9, noEnv, 0, false},
		{"GOMEMLIMIT set wins", map[string]string{"sys/fs/cgroup/memory.max": "1000000000\n"}, 0.9, withEnv, 0, false},
		// The runtime reads an empty GOMEMLIMIT as unset: no limit at all.
		{"GOMEMLIMIT empty is unset", map[string]string{"sys/fs/cgroup/memory.max": "1000000000\n"}, 0.9, emptyEnv, 900000000, false},
		{"GOMEMLIMIT off wins", map[string]string{"sys/fs/cgroup/memory.max": "1000000000\n"}, 0.9, offEnv, 0, false},
		{"ratio 0 disables", map[string]string{"sys/fs/cgroup/memory.max": "1000000000\n"}, 0, noEnv, 0, false},
		{"garbage", map[string]string{"sys/fs/cgroup/memory.max": "lots\n"}, 0.9, noEnv, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := memoryLimitFor(write(t, tc.files), tc.ratio, tc.env)
			if got != tc.want || (err != nil) != tc.err {
				t.Fatalf("memoryLimitFor = %d, %v; want %d, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}
