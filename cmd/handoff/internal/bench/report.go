package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"time"
)

// Target is the bound a figure's ratio must meet.
type Target struct {
	// AtLeast makes Value a lower bound, else it is an upper bound.
	AtLeast bool
	Value   float64
	// Text replaces the generated description when set.
	Text string
}

func atLeast(v float64) Target { return Target{AtLeast: true, Value: v} }

func atMost(v float64) Target { return Target{Value: v} }

// Met reports whether ratio meets the target. NaN, a figure that could not
// be measured, never does.
func (t Target) Met(ratio float64) bool {
	if math.IsNaN(ratio) {
		return false
	}
	if t.AtLeast {
		return ratio >= t.Value
	}
	return ratio <= t.Value
}

func (t Target) String() string {
	if t.Text != "" {
		return t.Text
	}
	if t.AtLeast {
		return fmt.Sprintf("≥ %.2f", t.Value)
	}
	return fmt.Sprintf("≤ %.2f", t.Value)
}

// Row is one line of the table.
type Row struct {
	Figure string
	// Baseline and Handoff are the figures as printed, and BaselineValue
	// and HandoffValue their medians in the row's unit.
	Baseline      string
	Handoff       string
	BaselineValue float64
	HandoffValue  float64
	// Ratio is the median of the rounds' Handoff/baseline ratios, or NaN
	// when no round measured both.
	Ratio  float64
	Target Target
	Met    bool
	// Failures list the failed operations and the rounds that measured
	// nothing. A row with failures is not a valid measurement.
	Failures []string
	// Notes explain how the figure departs from its plain reading.
	Notes []string
}

// Failed reports whether the row saw failures or could not be measured.
func (r Row) Failed() bool {
	return len(r.Failures) > 0 || r.BaselineValue <= 0 || r.HandoffValue <= 0
}

func newRow(figure string, baseline, handoff float64, ratios []float64, target Target) Row {
	r := Row{Figure: figure, BaselineValue: baseline, HandoffValue: handoff, Ratio: math.NaN(), Target: target}
	if len(ratios) > 0 {
		r.Ratio = median(ratios)
	}
	r.Met = target.Met(r.Ratio)
	return r
}

// Report is the outcome of a run.
type Report struct {
	Config Config
	Rows   []Row
	// Machine describes the processor, memory and operating system.
	Machine       string
	GoVersion     string
	ServerVersion string
	// LoadBefore and LoadAfter are the 1, 5 and 15 minute load averages
	// at the start and the end, where the system reports them.
	LoadBefore string
	LoadAfter  string
	Started    time.Time
	Elapsed    time.Duration
}

func newReport(cfg Config) *Report {
	return &Report{
		Config:     cfg,
		Machine:    machine(),
		GoVersion:  runtime.Version(),
		LoadBefore: loadAverage(),
		Started:    time.Now(),
	}
}

func (r *Report) finish() {
	r.LoadAfter = loadAverage()
	r.Elapsed = time.Since(r.Started)
}

// Failed returns the figures of the rows that saw failures or could not be
// measured.
func (r *Report) Failed() []string {
	var out []string
	for _, row := range r.Rows {
		if row.Failed() {
			out = append(out, row.Figure)
		}
	}
	return out
}

// WriteTable writes the report as a Markdown table with a header that says
// how it was measured.
func (r *Report) WriteTable(w io.Writer) error {
	c := r.Config
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Handoff benchmark, %s\n", r.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(bw, "Machine: %s; %s; nats-server %s, file storage, in process\n", r.Machine, r.GoVersion, orUnknown(r.ServerVersion))
	fmt.Fprintf(bw, "Load average (1, 5, 15 min): %s at the start, %s at the end\n", orUnknown(r.LoadBefore), orUnknown(r.LoadAfter))
	fmt.Fprintf(bw, "Each figure: median of %d rounds of %s after a %s warm-up; %d in flight, %d HTTP clients, %d-byte inputs\n",
		c.Rounds, c.Duration, c.Warmup, c.InFlight, c.HTTPClients, c.InputBytes)
	fmt.Fprintf(bw, "Rates are sustained: operations from the start of the warm-up until the stack is idle again, per second of that time\n\n")

	fmt.Fprintln(bw, "| figure | baseline, same run | Handoff | ratio | target | met |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|")
	var notes []string
	for _, row := range r.Rows {
		ratio := "—"
		if !math.IsNaN(row.Ratio) {
			ratio = fmt.Sprintf("%.2f", row.Ratio)
		}
		met := "no"
		if row.Met {
			met = "yes"
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s |\n", row.Figure, row.Baseline, row.Handoff, ratio, row.Target, met)
		for _, f := range row.Failures {
			notes = append(notes, row.Figure+": FAILED: "+f)
		}
		for _, n := range row.Notes {
			notes = append(notes, row.Figure+": "+n)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(bw)
		for _, n := range notes {
			fmt.Fprintf(bw, "- %s\n", n)
		}
	}
	fmt.Fprintf(bw, "\nThe run took %s.\n", r.Elapsed.Round(time.Second))
	return bw.Flush()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// machine describes this machine from what the runtime and, on Linux,
// /proc report.
func machine() string {
	model := procField("/proc/cpuinfo", "model name")
	if model == "" {
		model = runtime.GOARCH + " processor"
	}
	desc := fmt.Sprintf("%s, %d CPUs (GOMAXPROCS %d)", model, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	if mem := procField("/proc/meminfo", "MemTotal"); mem != "" {
		desc += ", " + formatMemTotal(mem) + " of memory"
	}
	return desc + ", " + runtime.GOOS + "/" + runtime.GOARCH
}

// formatMemTotal turns /proc/meminfo's "24558624 kB" into "23.4 GiB".
func formatMemTotal(v string) string {
	var kb float64
	if _, err := fmt.Sscanf(v, "%f kB", &kb); err != nil {
		return v
	}
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}

// procField returns the value of the first "name: value" line of a /proc
// file, or "" when there is none.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == name {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// loadAverage returns the first three fields of /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(b))
	if len(fields) < 3 {
		return ""
	}
	return strings.Join(fields[:3], ", ")
}
