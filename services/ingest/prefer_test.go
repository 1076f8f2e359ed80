package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParsePrefer(t *testing.T) {
	const maxWait = time.Minute
	tests := []struct {
		values  []string
		want    preferences
		applied string
	}{
		{nil, preferences{}, ""},
		{[]string{"wait=10"}, preferences{wait: 10 * time.Second}, "wait=10"},
		{[]string{"respond-async, wait=5"}, preferences{wait: 5 * time.Second, respondAsync: true}, "respond-async, wait=5"},
		{[]string{"respond-async", "wait=5"}, preferences{wait: 5 * time.Second, respondAsync: true}, "respond-async, wait=5"},
		{[]string{"WAIT = 7"}, preferences{wait: 7 * time.Second}, "wait=7"},
		{[]string{`wait="8"`}, preferences{wait: 8 * time.Second}, "wait=8"},
		{[]string{"wait=5, wait=9"}, preferences{wait: 5 * time.Second}, "wait=5"},
		{[]string{"wait=3600"}, preferences{wait: maxWait}, "wait=60"},
		{[]string{"wait=soon"}, preferences{}, ""},
		{[]string{"wait=-1"}, preferences{}, ""},
		{[]string{"wait"}, preferences{}, ""},
		{[]string{"wait=0"}, preferences{}, ""},
		{[]string{"wait=99999999999999999999"}, preferences{wait: maxWait}, "wait=60"},
		{[]string{"return=minimal; foo=\"a,b\", respond-async"}, preferences{respondAsync: true}, "respond-async"},
		{[]string{"respond-async;param=1"}, preferences{respondAsync: true}, "respond-async"},
		{[]string{",,, ,"}, preferences{}, ""},
	}
	for _, tt := range tests {
		got := parsePrefer(tt.values, maxWait)
		require.Equal(t, tt.want, got, "%q", tt.values)
		require.Equal(t, tt.applied, got.applied(), "%q", tt.values)
	}
}

func TestETagSequence(t *testing.T) {
	tests := []struct {
		values []string
		seq    uint64
		ok     bool
	}{
		{nil, 0, false},
		{[]string{`"42"`}, 42, true},
		{[]string{`W/"42"`}, 42, true},
		{[]string{`*`}, 0, false},
		{[]string{`"abc", "7"`}, 7, true},
		{[]string{`"x"`, `"9"`}, 9, true},
		{[]string{`42`}, 0, false},
	}
	for _, tt := range tests {
		seq, ok := etagSequence(tt.values)
		require.Equal(t, tt.ok, ok, "%q", tt.values)
		require.Equal(t, tt.seq, seq, "%q", tt.values)
	}
}
