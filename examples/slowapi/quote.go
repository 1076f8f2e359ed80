package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxDelay bounds delay_seconds so that one request cannot hold a
// connection for long.
const maxDelay = 5 * time.Minute

type quoteRequest struct {
	Customer     string      `json:"customer"`
	Items        []quoteItem `json:"items"`
	DelaySeconds *float64    `json:"delay_seconds,omitempty"`
}

type quoteItem struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type quoteResponse struct {
	Customer   string      `json:"customer"`
	Lines      []quoteLine `json:"lines"`
	TotalCents int64       `json:"total_cents"`
	Currency   string      `json:"currency"`
	QuotedAt   time.Time   `json:"quoted_at"`
}

type quoteLine struct {
	SKU            string `json:"sku"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
	LineCents      int64  `json:"line_cents"`
}

func newHandler(delay time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /quote", func(w http.ResponseWriter, r *http.Request) {
		var req quoteRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid quote request: %v", err))
			return
		}
		if err := req.validate(); err != nil {
			writeError(w, http.StatusUnprocessableEntity, err.Error())
			return
		}

		wait := delay
		if req.DelaySeconds != nil {
			wait = time.Duration(*req.DelaySeconds * float64(time.Second))
		}
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}

		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(req.price(time.Now().UTC()))
	})
	return mux
}

func (q *quoteRequest) validate() error {
	if strings.TrimSpace(q.Customer) == "" {
		return fmt.Errorf("customer is missing")
	}
	if len(q.Items) == 0 {
		return fmt.Errorf("items is empty")
	}
	for i, it := range q.Items {
		if it.SKU == "" {
			return fmt.Errorf("items[%d].sku is missing", i)
		}
		if it.Quantity < 1 || it.Quantity > 1_000_000 {
			return fmt.Errorf("items[%d].quantity %d is outside 1 to 1000000", i, it.Quantity)
		}
	}
	if d := q.DelaySeconds; d != nil && (*d < 0 || *d > maxDelay.Seconds()) {
		return fmt.Errorf("delay_seconds %v is outside 0 to %v", *d, maxDelay.Seconds())
	}
	return nil
}

// price computes a deterministic unit price from the SKU, so that tests
// can check the arithmetic without a price list.
func (q *quoteRequest) price(now time.Time) quoteResponse {
	resp := quoteResponse{Customer: q.Customer, Currency: "EUR", QuotedAt: now}
	for _, it := range q.Items {
		var unit int64 = 100
		for _, c := range []byte(it.SKU) {
			unit += int64(c)
		}
		line := unit * int64(it.Quantity)
		resp.Lines = append(resp.Lines, quoteLine{SKU: it.SKU, Quantity: it.Quantity, UnitPriceCents: unit, LineCents: line})
		resp.TotalCents += line
	}
	return resp
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
