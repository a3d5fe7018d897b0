package engine

import "testing"

// BenchmarkHashRequest is the request hash a purchase stores so that a
// retry with another body is refused, for a till's usual three lines.
func BenchmarkHashRequest(b *testing.B) {
	req := PurchaseRequest{ID: "till-7-000123", MemberExternalID: "card-0042", StoreID: "store-7", TerminalID: "till-7",
		Currency: "EUR", Amount: "23.70", Items: []ItemRequest{
			{SKU: "espresso", Category: "coffee", Quantity: 2, Amount: "5.00"},
			{SKU: "croissant", Category: "bakery", Quantity: 1, Amount: "2.70"},
			{SKU: "beans-1kg", Category: "retail", Quantity: 1, Amount: "16.00"}}}
	b.ReportAllocs()
	for b.Loop() {
		hashRequest(req)
	}
}
