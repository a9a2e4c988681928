package detect

// Finding is one detected span. Start and End are byte offsets into the
// normalised text (see Normalize), End exclusive. A Finding never carries the
// matched value, so findings can go into logs and audit records as they are.
type Finding struct {
	Type     string // what was found: "EMAIL", "CREDIT_DEBIT_CARD_NUMBER", "PROMPT_INJECTION", a word list's name, ...
	Detector string // the Name of the detector that found it
	Start    int
	End      int
}

// Detector finds spans in normalised text. Detect appends its findings to dst
// and returns the extended slice; it must be safe for concurrent use and must
// not retain text.
type Detector interface {
	Name() string
	Detect(text string, dst []Finding) []Finding
}
