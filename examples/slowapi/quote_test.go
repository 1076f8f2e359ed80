package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestQuotePricesItems(t *testing.T) {
	srv := httptest.NewServer(newHandler(time.Hour))
	defer srv.Close()

	body := `{"customer":"acme","items":[{"sku":"A","quantity":2},{"sku":"BC","quantity":1}],"delay_seconds":0}`
	resp, err := http.Post(srv.URL+"/quote", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	var q quoteResponse
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
		t.Fatal(err)
	}
	// A = 100+65 = 165 per unit; BC = 100+66+67 = 233.
	if q.TotalCents != 2*165+233 {
		t.Fatalf("total %d, want %d", q.TotalCents, 2*165+233)
	}
	if len(q.Lines) != 2 || q.Lines[1].UnitPriceCents != 233 {
		t.Fatalf("lines %+v", q.Lines)
	}
}

func TestQuoteRejectsBadRequests(t *testing.T) {
	srv := httptest.NewServer(newHandler(0))
	defer srv.Close()

	cases := map[string]int{
		`{`:                                 http.StatusBadRequest,
		`{"customer":"a","items":[],"x":1}`: http.StatusBadRequest,
		`{"customer":"","items":[{"sku":"A","quantity":1}]}`:                     http.StatusUnprocessableEntity,
		`{"customer":"a","items":[]}`:                                            http.StatusUnprocessableEntity,
		`{"customer":"a","items":[{"sku":"A","quantity":0}]}`:                    http.StatusUnprocessableEntity,
		`{"customer":"a","items":[{"sku":"A","quantity":1}],"delay_seconds":-1}`: http.StatusUnprocessableEntity,
	}
	for body, want := range cases {
		resp, err := http.Post(srv.URL+"/quote", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", body, resp.StatusCode, want)
		}
	}
}
