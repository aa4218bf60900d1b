package telegram

// BreakerOpen reports whether the Bot API is failing now: the circuit
// breaker in front of it (see apiGate) is open, and calls wait for its
// probe.
func (a *Adapter) BreakerOpen() bool { return a.gate.isOpen() }

// Backlog returns how many fetched updates wait to be handled by the
// current RunPolling, in memory or held in the Handoff; 0 before polling
// starts and with a webhook (Telegram keeps those: see getWebhookInfo's
// pending_update_count).
func (a *Adapter) Backlog() int {
	s := a.lastSched.Load()
	if s == nil {
		return 0
	}
	_, total := s.waiting()
	return total
}
