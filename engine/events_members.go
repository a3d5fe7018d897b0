package engine

// Event types of the member operations (import, merge, erase, transfer);
// docs/API.md has their data.
const (
	EventMemberMerged      = "member.merged"
	EventMemberErased      = "member.erased"
	EventPointsTransferred = "points.transferred"
	EventPointsImported    = "points.imported"
)
