package rules

// Job names, as the rules file, the API and the engine know them. This is
// the one list: the parser's keys under jobs:, the defaults and the
// engine's job table all come from it.
const (
	JobExpirePoints   = "expire-points"
	JobEvaluateTiers  = "evaluate-tiers"
	JobNotifyExpiring = "notify-expiring"
	JobBirthdayBonus  = "birthday-bonus"
	JobAnalytics      = "analytics"
	JobExpireCoupons  = "expire-coupons"
	JobBackup         = "backup"
	JobPruneEvents    = "prune-events"
)

// defaultJobs are the known jobs with their schedules when the file does not
// set them, in the order Program.Jobs lists them.
var defaultJobs = []Job{
	{JobExpirePoints, "@daily"},
	{JobEvaluateTiers, "30 2 * * *"},
	{JobNotifyExpiring, "0 9 * * MON"},
	{JobBirthdayBonus, "0 6 * * *"},
	{JobAnalytics, "0 3 * * *"},
	{JobExpireCoupons, "@hourly"},
	{JobBackup, "0 4 * * *"},
	{JobPruneEvents, "30 4 * * *"},
}

// JobNames lists every known job in a stable order, that of Program.Jobs.
func JobNames() []string {
	names := make([]string, len(defaultJobs))
	for i, j := range defaultJobs {
		names[i] = j.Name
	}
	return names
}
