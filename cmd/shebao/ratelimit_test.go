package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

func TestRateLimitConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	c, err := loadConfig(env(nil), false)
	if err != nil || c.RatePolicy != bot.DefaultRatePolicy {
		t.Errorf("unset: %+v, %v; want the default policy", c.RatePolicy, err)
	}
	c, err = loadConfig(env(map[string]string{"USER_RATE_LIMIT": "30", "USER_RATE_BURST": "5"}), false)
	if err != nil || c.RatePolicy.Every != 2*time.Second || c.RatePolicy.Burst != 5 {
		t.Errorf("30 a minute, burst 5: %+v, %v", c.RatePolicy, err)
	}
	c, err = loadConfig(env(map[string]string{"USER_RATE_LIMIT": "0"}), false)
	if err != nil || !c.RatePolicy.Off() {
		t.Errorf("0: %+v, %v; want the limit off", c.RatePolicy, err)
	}
	_, err = loadConfig(env(map[string]string{"USER_RATE_LIMIT": "many", "USER_RATE_BURST": "0"}), false)
	if err == nil || !strings.Contains(err.Error(), "USER_RATE_LIMIT") || !strings.Contains(err.Error(), "USER_RATE_BURST") {
		t.Errorf("bad values: %v, want both reported", err)
	}
}

func TestSendRateConfig(t *testing.T) {
	c, err := loadConfig(env(nil), false)
	if l := c.sendLimits(); err != nil || l.Rate != 30 || l.Off {
		t.Errorf("unset: %+v, %v; want Telegram's 30 a second", l, err)
	}
	c, err = loadConfig(env(map[string]string{"TELEGRAM_SEND_RATE": "12.5"}), false)
	if l := c.sendLimits(); err != nil || l.Rate != 12.5 || l.Off {
		t.Errorf("12.5: %+v, %v", l, err)
	}
	c, err = loadConfig(env(map[string]string{"TELEGRAM_SEND_RATE": "0"}), false)
	if l := c.sendLimits(); err != nil || !l.Off {
		t.Errorf("0: %+v, %v; want pacing off", l, err)
	}
	for _, v := range []string{"fast", "-1", "5000", "NaN"} {
		_, err = loadConfig(env(map[string]string{"TELEGRAM_SEND_RATE": v, "USER_RATE_BURST": "0"}), false)
		if err == nil || !strings.Contains(err.Error(), "TELEGRAM_SEND_RATE") || !strings.Contains(err.Error(), "USER_RATE_BURST") {
			t.Errorf("%q: %v, want it reported with the other errors", v, err)
		}
	}
}
