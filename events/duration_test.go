package events_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestDurationMarshal(t *testing.T) {
	t.Parallel()

	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, `"0s"`},
		{time.Nanosecond, `"1ns"`},
		{1500 * time.Microsecond, `"1.5ms"`},
		{90 * time.Second, `"1m30s"`},
		{10 * time.Minute, `"10m0s"`},
		{7 * 24 * time.Hour, `"168h0m0s"`},
		{time.Duration(math.MaxInt64), `"2562047h47m16.854775807s"`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(events.Duration(tt.d))
		require.NoError(t, err)
		require.JSONEq(t, tt.want, string(b))

		var back events.Duration
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, tt.d, back.Std())
		require.Equal(t, tt.d.String(), back.String())
	}
}

func TestDurationMarshalInStruct(t *testing.T) {
	t.Parallel()

	type wrapper struct {
		D events.Duration  `json:"d"`
		P *events.Duration `json:"p,omitempty"`
	}
	d := events.Duration(time.Minute)
	b, err := json.Marshal(wrapper{D: events.Duration(2 * time.Second), P: &d})
	require.NoError(t, err)
	require.JSONEq(t, `{"d":"2s","p":"1m0s"}`, string(b))

	var back wrapper
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, 2*time.Second, back.D.Std())
	require.Equal(t, time.Minute, back.P.Std())
}

func TestDurationUnmarshal(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want time.Duration
	}{
		{`"90s"`, 90 * time.Second},
		{`"1m30s"`, 90 * time.Second},
		{`"2h30m"`, 150 * time.Minute},
		{`"168h"`, 7 * 24 * time.Hour},
		{`"10ms"`, 10 * time.Millisecond},
		{`"1.5h"`, 90 * time.Minute},
		{`"0"`, 0},
		{`"0s"`, 0},
		{`"-0s"`, 0},
		{`"+5s"`, 5 * time.Second},
		{`"2562047h47m16.854775807s"`, time.Duration(math.MaxInt64)},
		{` "5s" `, 5 * time.Second},
		{`"\u0035s"`, 5 * time.Second},
		{`90`, 90 * time.Second},
		{`0`, 0},
		{`-0`, 0},
		{`1.5`, 1500 * time.Millisecond},
		{`0.001`, time.Millisecond},
		{`1e3`, 1000 * time.Second},
		{`1e-12`, 0},
		{`604800`, 7 * 24 * time.Hour},
		{`9223372036`, 9223372036 * time.Second},
		{`null`, 0},
	}
	for _, tt := range tests {
		var d events.Duration
		require.NoError(t, json.Unmarshal([]byte(tt.in), &d), tt.in)
		require.Equal(t, tt.want, d.Std(), tt.in)
	}
}

func TestDurationUnmarshalInvalid(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in      string
		wantMsg string
	}{
		{`"-1s"`, `invalid duration "-1s": must not be negative`},
		{`"-2h"`, `must not be negative`},
		{`"5"`, `invalid duration "5": use a Go duration such as "90s"`},
		{`"5 s"`, `invalid duration "5 s"`},
		{`"5d"`, `invalid duration "5d"`},
		{`""`, `invalid duration ""`},
		{`"s"`, `invalid duration "s"`},
		{`"NaN"`, `invalid duration "NaN"`},
		{`"Inf"`, `invalid duration "Inf"`},
		{`"2562047h47m16.854775808s"`, `invalid duration "2562047h47m16.854775808s"`},
		{`-1`, `invalid duration -1: seconds must be between 0 and 9223372036`},
		{`-0.5`, `seconds must be between 0 and 9223372036`},
		{`9223372037`, `invalid duration 9223372037: seconds must be between 0 and 9223372036`},
		// As a float64, this number of seconds times 1e9 rounds to 2^63,
		// one more than math.MaxInt64.
		{`9223372036.854775807`, `seconds must be between 0 and 9223372036`},
		{`1e300`, `seconds must be between 0 and 9223372036`},
		{`NaN`, `invalid duration NaN: use a Go duration string such as "90s" or a number of seconds`},
		{`Infinity`, `invalid duration Infinity`},
		{`1e400`, `invalid duration 1e400`},
		{`true`, `invalid duration true`},
		{`{}`, `invalid duration {}`},
		{`[]`, `invalid duration []`},
		{`"unterminated`, ``},
	}
	for _, tt := range tests {
		d := events.Duration(time.Hour)
		err := d.UnmarshalJSON([]byte(tt.in))
		require.Error(t, err, tt.in)
		require.ErrorContains(t, err, tt.wantMsg, tt.in)
		require.Equal(t, time.Hour, d.Std(), "a failed decode must leave the value alone: %s", tt.in)
	}
}

func TestDurationUnmarshalLargestSeconds(t *testing.T) {
	t.Parallel()

	// The largest number of seconds below the bound must still decode to a
	// positive duration.
	below := math.Nextafter(float64(math.MaxInt64)/float64(time.Second), 0)
	b, err := json.Marshal(below)
	require.NoError(t, err)

	var d events.Duration
	require.NoError(t, json.Unmarshal(b, &d))
	require.Positive(t, d.Std())
	require.Greater(t, d.Std(), 2562047*time.Hour)
}

func FuzzDurationUnmarshal(f *testing.F) {
	for _, seed := range []string{
		`"90s"`, `"1m30s"`, `"-1s"`, `"2562047h47m16.854775807s"`, `"0"`, `"1.5µs"`,
		`90`, `1.5`, `-1`, `1e300`, `9223372036.854775807`, `9223372036.8547`, `null`,
		`"`, `{}`, `true`, ``, ` `,
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		var d events.Duration
		if err := d.UnmarshalJSON(b); err != nil {
			return
		}
		require.GreaterOrEqual(t, d.Std(), time.Duration(0), "decoded %q", b)

		out, err := json.Marshal(d)
		require.NoError(t, err)
		var back events.Duration
		require.NoError(t, json.Unmarshal(out, &back), "re-decode %s", out)
		require.Equal(t, d, back)
	})
}
