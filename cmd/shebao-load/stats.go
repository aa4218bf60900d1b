package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted: the smallest value with at least p% of the values at or below
// it. Zero for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// latencies summarises a set of durations in milliseconds.
type latencies struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) latencies {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }
	l := latencies{N: len(s), P50: ms(percentile(s, 50)), P90: ms(percentile(s, 90)), P99: ms(percentile(s, 99))}
	if len(s) > 0 {
		l.Max = ms(s[len(s)-1])
	}
	return l
}

// maxListed bounds the update IDs listed per problem in a report.
const maxListed = 50

// result is the outcome of one phase: one bot, one mode, one scenario.
type result struct {
	Name     string  `json:"name"`
	Bot      string  `json:"bot"` // shebao or echo
	Mode     string  `json:"mode"`
	Scenario string  `json:"scenario"`
	Users    int     `json:"users"`
	Distinct int     `json:"distinct_chats"`
	Seconds  float64 `json:"seconds"` // sending window

	Sent          int       `json:"updates_sent"`
	Answered      int       `json:"updates_answered"`
	UpdatesPerSec float64   `json:"updates_per_sec"`
	FirstReply    latencies `json:"first_reply_latency"`
	FullAnswer    latencies `json:"full_answer_latency"`
	Messages      int       `json:"messages_received"`

	Lost          int      `json:"lost"`            // never answered
	LostIDs       []int64  `json:"lost_update_ids"` // first maxListed
	Incomplete    int      `json:"incomplete"`      // part of the answer missing
	AnsweredTwice int      `json:"answered_twice"`  // updates with a repeated answer
	TwiceIDs      []int64  `json:"answered_twice_update_ids"`
	OtherReplies  int      `json:"other_replies"` // answered with a text not seen in the warm-up
	OtherSamples  []string `json:"other_reply_samples,omitempty"`
	Stray         int      `json:"stray_messages"` // to a chat with nothing pending
	OutOfOrder    int      `json:"out_of_order"`   // a later update of a chat answered before an earlier one

	RSSKiB              []int64  `json:"serve_rss_kib,omitempty"` // per process, at the end
	HWMKiB              []int64  `json:"serve_hwm_kib,omitempty"`
	HandledDelta        float64  `json:"handled_updates_delta,omitempty"`
	RedisTripsPerUpdate *float64 `json:"redis_round_trips_per_update,omitempty"`

	FakeCalls       map[string]int64 `json:"fake_calls"`
	WebhookStatuses map[int]int64    `json:"webhook_statuses,omitempty"`
	WebhookGaveUp   int64            `json:"webhook_deliveries_given_up,omitempty"`
	Events          []string         `json:"events,omitempty"`
	Fault           *faultReport     `json:"fault,omitempty"`
	Fair            *fairReport      `json:"fairness,omitempty"` // flood, send-outage
	Budget          *budgetReport    `json:"send_budget,omitempty"`
}

// faultReport is what a sigterm, sigkill or redis-restart phase found.
type faultReport struct {
	Kind     string  `json:"kind"`
	AtSec    float64 `json:"at_sec"` // since the start of sending
	InFlight int     `json:"in_flight"`
	// Fate of the updates in flight at the fault.
	InFlightAnswered []int64 `json:"in_flight_answered_once"`
	InFlightLost     []int64 `json:"in_flight_lost"`
	InFlightTwice    []int64 `json:"in_flight_answered_twice"`
	// Longest wait for a first reply among them: a chat whose claim
	// died with the process stays blocked until the lock lease ends.
	InFlightMaxWaitSec float64 `json:"in_flight_max_wait_sec"`
	// Every update answered twice, in flight or not by the definition
	// above: with the polling hand-off an update is confirmed before it
	// is answered, and one answered just before a kill but not yet marked
	// handled is answered again. TwiceLatestBeforeMs is how long before
	// the fault the earliest such first answer came (0: none came before).
	TwiceAll            int     `json:"answered_twice_all"`
	TwiceLatestBeforeMs float64 `json:"answered_twice_first_answer_ms_before_fault"`
	inflight            []int64
	at                  time.Time
	// Updates (and their chats) whose first reply took over slowReply.
	SlowReplies int     `json:"replies_slower_than_5s"`
	SlowChats   int     `json:"chats_with_replies_slower_than_5s"`
	ExitCode    *int    `json:"exit_code,omitempty"`
	ExitSec     float64 `json:"exit_sec,omitempty"`    // signal to process exit
	RestartSec  float64 `json:"restart_sec,omitempty"` // restart to ready
	// Redis outage.
	OutageSec        float64       `json:"outage_sec,omitempty"`
	AnsweredInOutage int           `json:"answers_during_outage,omitempty"`
	SentInOutage     int           `json:"sent_during_outage,omitempty"`
	HealthDuring     map[int]int   `json:"healthz_during,omitempty"` // status → count (0: no answer)
	HealthAfter      map[int]int   `json:"healthz_after,omitempty"`
	Healthy200After  float64       `json:"healthz_200_after_restart_sec,omitempty"`
	NormalAfter      *float64      `json:"full_service_after_restart_sec,omitempty"`
	Timeline         []healthPoint `json:"-"`
	outage           [2]time.Time  // redis stopped, started again
}

type healthPoint struct {
	at   time.Time
	code int
}

// analyse fills the answer statistics of res from the tracker's records.
// window is when the users were sending.
func analyse(res *result, recs []record, start, stop time.Time) {
	var first, full []time.Duration
	chats := make(map[int64][]record)
	for _, r := range recs {
		chats[r.Chat] = append(chats[r.Chat], r)
		res.Sent++
		switch {
		case r.Got == 0:
			res.Lost++
			if len(res.LostIDs) < maxListed {
				res.LostIDs = append(res.LostIDs, r.ID)
			}
		case r.DoneAt.IsZero():
			res.Incomplete++
		}
		if !r.FirstAt.IsZero() {
			first = append(first, r.FirstAt.Sub(r.SentAt))
		}
		if !r.DoneAt.IsZero() {
			full = append(full, r.DoneAt.Sub(r.SentAt))
			if !r.DoneAt.After(stop) {
				res.Answered++
			}
		}
		if r.Dups > 0 {
			res.AnsweredTwice++
			if len(res.TwiceIDs) < maxListed {
				res.TwiceIDs = append(res.TwiceIDs, r.ID)
			}
		}
		if r.Alt != "" {
			res.OtherReplies++
		}
	}
	slices.Sort(res.LostIDs)
	slices.Sort(res.TwiceIDs)
	res.Distinct = len(chats)
	res.OutOfOrder = outOfOrder(chats)
	res.Seconds = stop.Sub(start).Seconds()
	if res.Seconds > 0 {
		res.UpdatesPerSec = math.Round(float64(res.Answered)/res.Seconds*10) / 10
	}
	res.FirstReply = summarize(first)
	res.FullAnswer = summarize(full)
}

// outOfOrder counts updates whose first reply came before the answer to an
// earlier update of the same chat was complete.
func outOfOrder(chats map[int64][]record) int {
	n := 0
	for _, rs := range chats {
		sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
		var doneBefore time.Time // latest completion among earlier updates
		for _, r := range rs {
			if r.FirstAt.IsZero() {
				continue
			}
			if r.FirstAt.Before(doneBefore) {
				n++
			}
			end := r.DoneAt
			if end.IsZero() {
				end = r.FirstAt
			}
			if end.After(doneBefore) {
				doneBefore = end
			}
		}
	}
	return n
}

// report is everything one harness run found.
type report struct {
	Started  time.Time `json:"started"`
	Command  string    `json:"command"`
	Host     string    `json:"host_note"`
	Results  []*result `json:"results"`
	Ratios   []ratio   `json:"shebao_to_echo"`
	Problems []string  `json:"problems"`
}

// ratio compares shebao with the echo bot in one mode. With --rounds the
// two alternate, a pair per round, because the speed of a shared machine
// drifts over minutes: Ratio is then the median of the rounds.
type ratio struct {
	Mode   string    `json:"mode"`
	Ratio  float64   `json:"throughput_ratio"`
	Rounds []float64 `json:"rounds,omitempty"`
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write json report: %w", err)
	}
	return nil
}

func (rep *report) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "shebao load harness — %s\n%s\n", rep.Started.Format(time.RFC3339), rep.Command)
	if rep.Host != "" {
		fmt.Fprintf(&b, "note: %s\n", rep.Host)
	}
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "\n== %s (%s, %s, scenario %s) ==\n", r.Name, r.Bot, r.Mode, r.Scenario)
		fmt.Fprintf(&b, "  users %d, distinct chats %d, sending for %.1fs\n", r.Users, r.Distinct, r.Seconds)
		fmt.Fprintf(&b, "  updates sent %d, answered in window %d: %.1f updates/s; messages received %d\n",
			r.Sent, r.Answered, r.UpdatesPerSec, r.Messages)
		fmt.Fprintf(&b, "  first reply  p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms (n=%d)\n",
			r.FirstReply.P50, r.FirstReply.P90, r.FirstReply.P99, r.FirstReply.Max, r.FirstReply.N)
		fmt.Fprintf(&b, "  full answer  p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms (n=%d)\n",
			r.FullAnswer.P50, r.FullAnswer.P90, r.FullAnswer.P99, r.FullAnswer.Max, r.FullAnswer.N)
		fmt.Fprintf(&b, "  lost %d, incomplete %d, answered twice %d, other replies %d, stray %d, out of order %d\n",
			r.Lost, r.Incomplete, r.AnsweredTwice, r.OtherReplies, r.Stray, r.OutOfOrder)
		if len(r.LostIDs) > 0 {
			fmt.Fprintf(&b, "  lost update_ids: %v\n", r.LostIDs)
		}
		if len(r.TwiceIDs) > 0 {
			fmt.Fprintf(&b, "  answered-twice update_ids: %v\n", r.TwiceIDs)
		}
		for _, s := range r.OtherSamples {
			fmt.Fprintf(&b, "  unexpected reply: %s\n", s)
		}
		if len(r.RSSKiB) > 0 {
			fmt.Fprintf(&b, "  serve memory at end: VmRSS %v KiB, VmHWM %v KiB\n", r.RSSKiB, r.HWMKiB)
		}
		if r.RedisTripsPerUpdate != nil {
			fmt.Fprintf(&b, "  redis round trips per handled update: %.2f (%.0f handled)\n", *r.RedisTripsPerUpdate, r.HandledDelta)
		}
		fmt.Fprintf(&b, "  fake api calls: %v\n", sortedCounts(r.FakeCalls))
		if len(r.WebhookStatuses) > 0 {
			fmt.Fprintf(&b, "  webhook answers by status: %v, given up %d\n", r.WebhookStatuses, r.WebhookGaveUp)
		}
		if f := r.Fault; f != nil {
			fmt.Fprintf(&b, "  fault %s at %.1fs with %d updates in flight\n", f.Kind, f.AtSec, f.InFlight)
			if f.ExitCode != nil {
				fmt.Fprintf(&b, "    serve exited with code %d after %.2fs; restarted and ready in %.2fs\n", *f.ExitCode, f.ExitSec, f.RestartSec)
			}
			fmt.Fprintf(&b, "    %d updates in %d chats waited more than 5s for a first reply\n", f.SlowReplies, f.SlowChats)
			if f.Kind != "redis-restart" {
				fmt.Fprintf(&b, "    in flight (awaiting an answer or unconfirmed): answered once %v, lost %v, answered twice %v; longest wait for a first reply %.2fs\n",
					f.InFlightAnswered, f.InFlightLost, f.InFlightTwice, f.InFlightMaxWaitSec)
				if f.TwiceAll > 0 {
					fmt.Fprintf(&b, "    answered twice in all: %d, the earliest first answered %.0f ms before the fault\n", f.TwiceAll, f.TwiceLatestBeforeMs)
				}
			} else {
				fmt.Fprintf(&b, "    redis down %.1fs: %d updates sent, %d answers received meanwhile\n", f.OutageSec, f.SentInOutage, f.AnsweredInOutage)
				fmt.Fprintf(&b, "    /healthz during outage %v, after %v; 200 again %.2fs after restart\n", f.HealthDuring, f.HealthAfter, f.Healthy200After)
				if f.NormalAfter != nil {
					fmt.Fprintf(&b, "    every update sent from %.2fs after the restart on got its normal answer\n", *f.NormalAfter)
				}
			}
		}
		if r.Budget != nil {
			r.Budget.write(&b)
		}
		for _, e := range r.Events {
			fmt.Fprintf(&b, "  event: %s\n", e)
		}
	}
	if len(rep.Ratios) > 0 {
		b.WriteString("\nthroughput shebao / bare echo bot:")
		for _, r := range rep.Ratios {
			fmt.Fprintf(&b, " %s %.2f", r.Mode, r.Ratio)
			if len(r.Rounds) > 1 {
				fmt.Fprintf(&b, " (median of rounds %s)", joinRatios(r.Rounds))
			}
		}
		b.WriteString("\n")
	}
	if len(rep.Problems) > 0 {
		b.WriteString("\nPROBLEMS:\n")
		for _, p := range rep.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	} else {
		b.WriteString("\nno lost, duplicated or out-of-order answers\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func joinRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(parts, " ")
}

// median of a non-empty list.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
