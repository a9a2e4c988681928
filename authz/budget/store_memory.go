package budget

import (
	"context"
	"sync"
	"time"
)

// Memory is the in-memory store: one replica's counters, exact for that
// replica and lost on restart (so nothing outlives a crash). It is the
// default store, and a fail_open replica's fallback while the shared store
// is unreachable.
type Memory struct {
	mu   sync.RWMutex
	apps map[string]*memApp
	now  func() time.Time
}

type memApp struct {
	mu sync.Mutex
	c  [NumKinds]counter
}

// counter is one budget's use within window win.
type counter struct{ win, n int64 }

// NewMemory returns an empty in-memory store; now is the clock (nil:
// time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{apps: map[string]*memApp{}, now: now}
}

func (m *Memory) app(name string) *memApp {
	m.mu.RLock()
	a := m.apps[name]
	m.mu.RUnlock()
	if a != nil {
		return a
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a = m.apps[name]; a == nil {
		a = &memApp{}
		m.apps[name] = a
	}
	return a
}

// windows computes the current window of every budget l sets.
func windows(l *Limits, now time.Time) (w [NumKinds]int64, kinds uint16) {
	var day, month bool
	var dayW, monthW int64
	for k := Kind(0); k < NumKinds; k++ {
		if l.Max[k] <= 0 {
			continue
		}
		kinds |= 1 << k
		switch p := k.Period(); p {
		case PeriodDay:
			if !day {
				dayW, day = Window(p, now), true
			}
			w[k] = dayW
		case PeriodMonth:
			if !month {
				monthW, month = Window(p, now), true
			}
			w[k] = monthW
		default:
			w[k] = Window(p, now)
		}
	}
	return w, kinds
}

// Reserve implements Store.
func (m *Memory) Reserve(_ context.Context, app string, l *Limits, amt Amount) (Ticket, error) {
	now := m.now()
	win, kinds := windows(l, now)
	a := m.app(app)
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := Kind(0); k < NumKinds; k++ {
		if kinds&(1<<k) == 0 {
			continue
		}
		c := &a.c[k]
		if c.win != win[k] {
			c.win, c.n = win[k], 0
		}
		if amt[k] > 0 && c.n+amt[k] > l.Max[k] {
			return Ticket{}, &Exceeded{App: app, Kind: k, Limit: l.Max[k], Used: c.n, Want: amt[k], ResetAt: ResetAt(k.Period(), win[k])}
		}
	}
	for k := Kind(0); k < NumKinds; k++ {
		if kinds&(1<<k) != 0 {
			a.c[k].n += amt[k]
		}
	}
	return Ticket{App: app, Amount: amt, Windows: win, Kinds: kinds, store: m}, nil
}

// Settle implements Store.
func (m *Memory) Settle(_ context.Context, t *Ticket, used Amount) error {
	a := m.app(t.App)
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := Kind(0); k < NumKinds; k++ {
		if !t.tracked(k) {
			continue
		}
		c := &a.c[k]
		if c.win != t.Windows[k] {
			continue // the window passed: its count stays as it was
		}
		c.n = max(0, c.n+used[k]-t.Amount[k])
	}
	return nil
}

// Usage implements Store.
func (m *Memory) Usage(_ context.Context, app string, l *Limits) (Amount, error) {
	win, kinds := windows(l, m.now())
	a := m.app(app)
	a.mu.Lock()
	defer a.mu.Unlock()
	var u Amount
	for k := Kind(0); k < NumKinds; k++ {
		if kinds&(1<<k) != 0 && a.c[k].win == win[k] {
			u[k] = a.c[k].n
		}
	}
	return u, nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
