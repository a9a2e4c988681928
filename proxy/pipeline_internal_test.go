package proxy

import "testing"

func TestSharesArray(t *testing.T) {
	a := make([]byte, 10, 16)
	b := make([]byte, 10, 16)
	cases := []struct {
		x, y []byte
		want bool
	}{
		{a, a, true}, {a[:3], a, true}, {a, a[:0], true}, {a[2:5], a, true},
		{a, b, false}, {nil, a, false}, {a, nil, false}, {a[:0:0], a, false},
	}
	for i, tc := range cases {
		if got := sharesArray(tc.x, tc.y); got != tc.want {
			t.Errorf("case %d: sharesArray = %v, want %v", i, got, tc.want)
		}
	}
}
