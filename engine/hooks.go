package engine

// Hooks are told about what the engine did once it is committed, so that
// metrics can count it without the engine knowing about them. Each hook is
// optional, must be quick, and must not call back into the engine.
type Hooks struct {
	// JobRun receives the record of every job run, failed or not.
	JobRun func(run JobRun)
	// PointsExpired receives the points one expire-points chunk wrote off.
	PointsExpired func(points int64)
	// RuleFailed receives the name of an earn rule that failed on a
	// purchase, which was refused.
	RuleFailed func(rule string)
}

func (h Hooks) jobRun(r *JobRun) {
	if h.JobRun != nil {
		h.JobRun(*r)
	}
}

func (h Hooks) pointsExpired(points int64) {
	if h.PointsExpired != nil && points > 0 {
		h.PointsExpired(points)
	}
}

func (h Hooks) ruleFailed(rule string) {
	if h.RuleFailed != nil {
		h.RuleFailed(rule)
	}
}
