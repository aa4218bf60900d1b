package faq

import (
	"context"
	"strings"
	"testing"
)

func TestSafetyComesFirst(t *testing.T) {
	f := realFAQ(t)
	for _, tt := range []struct {
		q    string
		want string
	}{
		{"我爸胸口疼得厉害 医保能报吗", SafetyEmergency},
		{"my mom collapsed and is unconscious, will insurance cover it", SafetyEmergency},
		{"我不想活了", SafetyCrisis},
		{"I want to kill myself", SafetyCrisis},
		{"我爸被车撞了，流血不止，医保能报吗", SafetyEmergency},
		{"grandpa has trouble breathing and won't wake up, do we need insurance first", SafetyEmergency},
		{"活够了，一了百了", SafetyCrisis},
		{"I can't go on anymore, everyone is better off without me", SafetyCrisis},
		{"医保断缴了还能补吗", ""},
		{"车祸受伤住院，医保和车险怎么报", ""}, // after the fact: no 120 line
		{"医保卡丢了怎么办", ""},
	} {
		a, err := f.Answer(context.Background(), Query{Text: tt.q, Day: testDay})
		if err != nil {
			t.Fatal(err)
		}
		if a.Safety != tt.want {
			t.Errorf("%q: safety %q, want %q", tt.q, a.Safety, tt.want)
		}
		if tt.want == SafetyCrisis && (a.EntryID != "" || len(a.Citations) > 0 || !strings.Contains(a.Text, "12356")) {
			t.Errorf("%q: a crisis got a policy answer or no helpline: %+v", tt.q, a)
		}
	}
}
