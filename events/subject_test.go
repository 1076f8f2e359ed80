package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestParseSubjectValid(t *testing.T) {
	t.Parallel()

	tests := []struct {
		subject string
		want    events.Subject
	}{
		{
			subject: "handoff.task.default.01JDXYZ.submitted.files.manifest",
			want:    events.Subject{Namespace: "handoff", Tenant: "default", TaskID: "01JDXYZ", Kind: events.KindSubmitted, TaskType: "files.manifest"},
		},
		{
			subject: "h.task.t.i.delivery_failed.x",
			want:    events.Subject{Namespace: "h", Tenant: "t", TaskID: "i", Kind: events.KindDeliveryFailed, TaskType: "x"},
		},
		{
			subject: "ns-2_b.task.acme_co-1.Task_ID-9.cancel_requested.a-b.c_d.e9",
			want:    events.Subject{Namespace: "ns-2_b", Tenant: "acme_co-1", TaskID: "Task_ID-9", Kind: events.KindCancelRequested, TaskType: "a-b.c_d.e9"},
		},
		{
			subject: strings.Repeat("n", 32) + ".task." + strings.Repeat("t", 64) + "." + strings.Repeat("I", 64) + ".started." + strings.Repeat("y", 128),
			want: events.Subject{
				Namespace: strings.Repeat("n", 32),
				Tenant:    strings.Repeat("t", 64),
				TaskID:    strings.Repeat("I", 64),
				Kind:      events.KindStarted,
				TaskType:  strings.Repeat("y", 128),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			got, err := events.ParseSubject(tt.subject)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.subject, got.String())
			require.NoError(t, got.Validate())
		})
	}
}

func TestParseSubjectEveryKind(t *testing.T) {
	t.Parallel()

	for _, kind := range events.Kinds {
		s := events.Subject{Namespace: events.DefaultNamespace, Tenant: events.DefaultTenant, TaskID: "abc", Kind: kind, TaskType: "echo"}
		got, err := events.ParseSubject(s.String())
		require.NoError(t, err, kind)
		require.Equal(t, s, got)
	}
}

func TestParseSubjectInvalid(t *testing.T) {
	t.Parallel()

	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name      string
		subject   string
		wantToken bool // whether the error also wraps ErrInvalidToken
		wantMsg   string
	}{
		{"empty", "", false, "fewer than 6 tokens"},
		{"namespace only", "handoff", false, "fewer than 6 tokens"},
		{"two tokens", "handoff.task", false, "fewer than 6 tokens"},
		{"three tokens", "handoff.task.default", false, "fewer than 6 tokens"},
		{"four tokens", "handoff.task.default.id", false, "fewer than 6 tokens"},
		{"five tokens", "handoff.task.default.id.submitted", false, "fewer than 6 tokens"},
		{"wrong second token", "handoff.tasks.default.id.submitted.echo", false, `second token must be "task"`},
		{"upper second token", "handoff.TASK.default.id.submitted.echo", false, `second token must be "task"`},
		{"empty namespace", ".task.default.id.submitted.echo", true, "namespace is empty"},
		{"long namespace", long(33) + ".task.default.id.submitted.echo", true, "namespace is 33 bytes, longer than the maximum of 32"},
		{"upper namespace", "Handoff.task.default.id.submitted.echo", true, `namespace "Handoff" contains 'H'`},
		{"empty tenant", "handoff.task..id.submitted.echo", true, "tenant is empty"},
		{"long tenant", "handoff.task." + long(65) + ".id.submitted.echo", true, "tenant is 65 bytes, longer than the maximum of 64"},
		{"upper tenant", "handoff.task.Acme.id.submitted.echo", true, `tenant "Acme" contains 'A'`},
		{"wildcard tenant", "handoff.task.*.id.submitted.echo", true, `tenant "*" contains '*'`},
		{"empty task id", "handoff.task.default..submitted.echo", true, "task id is empty"},
		{"long task id", "handoff.task.default." + long(65) + ".submitted.echo", true, "task id is 65 bytes, longer than the maximum of 64"},
		{"task id with space", "handoff.task.default.a b.submitted.echo", true, `task id "a b" contains ' '`},
		{"unknown kind", "handoff.task.default.id.finished.echo", false, `unknown event kind: "finished"`},
		{"empty kind", "handoff.task.default.id..echo", false, `unknown event kind: ""`},
		{"upper kind", "handoff.task.default.id.SUBMITTED.echo", false, `unknown event kind: "SUBMITTED"`},
		{"empty task type", "handoff.task.default.id.submitted.", true, "task type is empty"},
		{"long task type", "handoff.task.default.id.submitted." + long(129), true, "task type is 129 bytes, longer than the maximum of 128"},
		{"task type empty token", "handoff.task.default.id.submitted.files..manifest", true, `task type "files..manifest" has an empty token`},
		{"task type trailing dot", "handoff.task.default.id.submitted.files.", true, `task type "files." has an empty token`},
		{"task type wildcard", "handoff.task.default.id.submitted.files.>", true, `task type "files.>" contains '>'`},
		{"task type upper", "handoff.task.default.id.submitted.Files", true, `task type "Files" contains 'F'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := events.ParseSubject(tt.subject)
			require.ErrorIs(t, err, events.ErrInvalidSubject)
			if tt.wantToken {
				require.ErrorIs(t, err, events.ErrInvalidToken)
			} else {
				require.NotErrorIs(t, err, events.ErrInvalidToken)
			}
			require.ErrorContains(t, err, tt.wantMsg)
			require.Zero(t, got)
		})
	}
}

func TestParseSubjectUnknownKindIs(t *testing.T) {
	t.Parallel()

	_, err := events.ParseSubject("handoff.task.default.id.finished.echo")
	require.ErrorIs(t, err, events.ErrUnknownKind)
}

func TestSubjectValidateNamesToken(t *testing.T) {
	t.Parallel()

	valid := events.Subject{Namespace: "handoff", Tenant: "default", TaskID: "id", Kind: events.KindStarted, TaskType: "echo"}
	require.NoError(t, valid.Validate())

	s := valid
	s.Namespace = "bad ns"
	require.ErrorContains(t, s.Validate(), "namespace")

	s = valid
	s.Tenant = ""
	require.ErrorContains(t, s.Validate(), "tenant")

	s = valid
	s.TaskID = "x.y"
	require.ErrorContains(t, s.Validate(), "task id")

	s = valid
	s.Kind = "nope"
	require.ErrorIs(t, s.Validate(), events.ErrUnknownKind)

	s = valid
	s.TaskType = "a..b"
	require.ErrorContains(t, s.Validate(), "task type")
}

// tokenCase is one input to a token validator and the error text expected,
// or "" when the token is valid.
type tokenCase struct {
	token   string
	wantErr string
}

func checkTokens(t *testing.T, validate func(string) error, cases []tokenCase) {
	t.Helper()
	for _, tc := range cases {
		err := validate(tc.token)
		if tc.wantErr == "" {
			require.NoError(t, err, "token %q", tc.token)
			continue
		}
		require.ErrorIs(t, err, events.ErrInvalidToken, "token %q", tc.token)
		require.ErrorContains(t, err, tc.wantErr, "token %q", tc.token)
	}
}

func TestValidateTenant(t *testing.T) {
	t.Parallel()

	checkTokens(t, events.ValidateTenant, []tokenCase{
		{"default", ""},
		{"a", ""},
		{"acme-co_2", ""},
		{"0123456789", ""},
		{strings.Repeat("t", 64), ""},
		{strings.Repeat("t", 65), "tenant is 65 bytes, longer than the maximum of 64"},
		{"", "tenant is empty"},
		{"Acme", `tenant "Acme" contains 'A'; allowed are a-z, 0-9, '_' and '-'`},
		{"a.b", `contains '.'`},
		{"a b", `contains ' '`},
		{"*", `contains '*'`},
		{">", `contains '>'`},
		{"é", `tenant "é" contains 'é'`},
		{"a\xffb", `contains '\xff'`},
	})
}

func TestValidateTaskID(t *testing.T) {
	t.Parallel()

	checkTokens(t, events.ValidateTaskID, []tokenCase{
		{events.NewID(), ""},
		{"01JDXYZABCDEFGHJKMNPQRSTVW", ""},
		{"my-Task_1", ""},
		{"x", ""},
		{strings.Repeat("I", 64), ""},
		{strings.Repeat("I", 65), "task id is 65 bytes, longer than the maximum of 64"},
		{"", "task id is empty"},
		{"a.b", `task id "a.b" contains '.'; allowed are A-Z, a-z, 0-9, '_' and '-'`},
		{"a/b", `contains '/'`},
		{"a*", `contains '*'`},
		{"a\tb", `contains '\t'`},
		{"a\x00", `contains '\x00'`},
	})
}

func TestValidateNamespace(t *testing.T) {
	t.Parallel()

	checkTokens(t, events.ValidateNamespace, []tokenCase{
		{"handoff", ""},
		{"handoff-staging_2", ""},
		{strings.Repeat("n", 32), ""},
		{strings.Repeat("n", 33), "namespace is 33 bytes, longer than the maximum of 32"},
		{"", "namespace is empty"},
		{"Handoff", `namespace "Handoff" contains 'H'`},
		{"a.b", `contains '.'`},
	})
}

func TestValidateTaskType(t *testing.T) {
	t.Parallel()

	checkTokens(t, events.ValidateTaskType, []tokenCase{
		{"echo", ""},
		{"files.manifest", ""},
		{"a.b.c.d-e_f.9", ""},
		{strings.Repeat("y", 128), ""},
		{strings.Repeat("y.", 63) + "yy", ""},
		{strings.Repeat("y", 129), "task type is 129 bytes, longer than the maximum of 128"},
		{"", "task type is empty"},
		{".", `task type "." has an empty token`},
		{".echo", `task type ".echo" has an empty token`},
		{"echo.", `task type "echo." has an empty token`},
		{"a..b", `task type "a..b" has an empty token`},
		{"Echo", `task type "Echo" contains 'E'; allowed are a-z, 0-9, '_', '-' and '.' between tokens`},
		{"files.*", `contains '*'`},
		{"files.>", `contains '>'`},
		{"a b", `contains ' '`},
	})
}

func TestValidateTypePattern(t *testing.T) {
	t.Parallel()

	checkTokens(t, events.ValidateTypePattern, []tokenCase{
		{">", ""},
		{"echo", ""},
		{"files.manifest", ""},
		{"files.>", ""},
		{"a.b.>", ""},
		{strings.Repeat("y", 128) + ".>", ""},
		{strings.Repeat("y", 129) + ".>", "task type is 129 bytes"},
		{"", "task type is empty"},
		{".>", "task type is empty"},
		{"..>", `task type "." has an empty token`},
		{"files.>.>", `contains '>'`},
		{">.files", `contains '>'`},
		{"files>", `contains '>'`},
		{"*", `contains '*'`},
		{"files.*", `contains '*'`},
	})
}

func TestTaskFilter(t *testing.T) {
	t.Parallel()

	require.Equal(t, "handoff.task.acme.01ABC.>", events.TaskFilter("handoff", "acme", "01ABC"))
}

func TestKindFilter(t *testing.T) {
	t.Parallel()

	require.Equal(t, "handoff.task.*.*.submitted.files.>", events.KindFilter("handoff", events.KindSubmitted, "files.>"))
	require.Equal(t, "x.task.*.*.succeeded.>", events.KindFilter("x", events.KindSucceeded, ">"))
}

func FuzzParseSubject(f *testing.F) {
	f.Add("handoff.task.default.01JDXYZ.submitted.files.manifest")
	f.Add("h.task.t.i.delivery_failed.x")
	f.Add("handoff.task.default.id.submitted.")
	f.Add("handoff.task.default.id.submitted.a..b")
	f.Add("handoff.task")
	f.Add("handoff.tasks.a.b.c.d")
	f.Add("..........")
	f.Add("handoff.task.*.*.succeeded.>")
	f.Add("handoff.task.d.i.started.\xff")

	f.Fuzz(func(t *testing.T, subject string) {
		s, err := events.ParseSubject(subject)
		if err != nil {
			require.ErrorIs(t, err, events.ErrInvalidSubject)
			require.Zero(t, s)
			return
		}
		require.Equal(t, subject, s.String())
		require.NoError(t, s.Validate())
	})
}

func BenchmarkParseSubject(b *testing.B) {
	subject := "handoff.task.default.01JDXYZABCDEFGHJKMNPQRSTVW.submitted.files.manifest"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.ParseSubject(subject); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubjectString(b *testing.B) {
	s := events.Subject{Namespace: "handoff", Tenant: "default", TaskID: "01JDXYZABCDEFGHJKMNPQRSTVW", Kind: events.KindSubmitted, TaskType: "files.manifest"}
	b.ReportAllocs()
	for b.Loop() {
		if s.String() == "" {
			b.Fatal("empty subject")
		}
	}
}

func TestTokenFault(t *testing.T) {
	err := events.ValidateTaskID("a.b")
	require.ErrorIs(t, err, events.ErrInvalidToken)
	require.True(t, strings.HasPrefix(events.TokenFault(err), `task id "a.b" contains '.'`), events.TokenFault(err))
	require.Equal(t, "other", events.TokenFault(errors.New("other")))
}
