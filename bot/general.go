package bot

import (
	"context"
	"strings"
)

func runStart(ctx context.Context, t *turn, _ string) error {
	t.endDialog()
	t.say(t.l(
		"您好！我是社保医保小助手。\n"+
			"我可以：\n"+
			"• 回答社保、医保政策问题，并注明依据的法律条文；\n"+
			"• 验证身份后，查看您本人的缴费记录、医保个人账户余额，找出断缴月份，告诉您怎么补缴、带什么材料。\n\n"+
			"下一步：直接输入您的问题，例如“医保断缴了还能补吗？”；或发送 /verify 验证身份。\n"+
			"发送 /help 查看所有命令，/lang 切换语言。",
		"Hello! I help with questions about social and medical insurance in China.\n"+
			"I can:\n"+
			"• answer policy questions, citing the article of law each answer rests on;\n"+
			"• after you verify who you are, show your own contributions and medical-account balance, find missed months, and tell you how to make them up and what to bring.\n\n"+
			"Next: just type your question, e.g. \"Can I make up missed medical insurance months?\", or send /verify.\n"+
			"Send /help for all commands, /lang to switch language."),
		[]Button{btn(t.l("🔐 验证身份", "🔐 Verify"), "verify:"), btn(t.l("English", "中文"), t.l("lang:en", "lang:zh"))})
	return nil
}

func runHelp(ctx context.Context, t *turn, _ string) error {
	var d doc
	d.line(bold(t.l("命令", "Commands")))
	for _, c := range Commands() {
		d.line(txtf("/%s — %s", c.Name, t.l(c.ZH, c.EN)))
	}
	d.blank()
	d.line(txt(t.l(
		"也可以直接用文字提问，例如“查社保缴费记录要钱吗？”",
		"Or just type a question, e.g. \"Is it free to look up my contribution records?\"")))
	t.show(&d)
	return nil
}

func runLang(ctx context.Context, t *turn, arg string) error {
	switch strings.ToLower(strings.TrimSpace(arg)) {
	case "zh", "cn", "中文", "chinese":
		t.lang = "zh"
	case "en", "english", "英文":
		t.lang = "en"
	default:
		t.say(t.l("请选择语言：", "Choose a language:"),
			[]Button{btn("中文", "lang:zh"), btn("English", "lang:en")})
		return nil
	}
	t.st.Lang = t.lang
	t.dirty |= PartLang
	if rs := t.e.cfg.Reminders; rs != nil {
		// Reminders are written in the language kept with their setting.
		s, ok, err := rs.Reminder(ctx, t.msg.Chat, t.msg.User)
		if err == nil && ok && s.Lang != t.lang {
			s.Lang = t.lang
			err = rs.SetReminder(ctx, s)
		}
		if err != nil {
			t.e.log.Warn("update reminder language", "chat", t.msg.Chat, "err", err)
		}
	}
	t.say(t.l("好的，之后用中文回复您。", "OK, I will reply in English from now on."))
	t.replacesMenu()
	return nil
}

func runCancel(ctx context.Context, t *turn, _ string) error {
	if !t.stateOK {
		t.unavailable()
		return nil
	}
	if t.st.Dialog.Name == "" {
		t.say(t.l("现在没有进行中的操作。有问题可以直接问我。", "There is nothing to cancel. Ask me anything."))
		return nil
	}
	t.endDialog()
	r := TextReply(t.l("已取消。有问题可以直接问我。", "Cancelled. Ask me anything."))
	r.RemoveKeyboard = true
	t.replies = append(t.replies, r)
	return nil
}
