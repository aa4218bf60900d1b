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
		[]Button{btn(t.l("🔐 验证身份", "🔐 Verify"), "verify:"), btn(t.l("English", "中文"), t.l("lang:en:start", "lang:zh:start"))})
	return nil
}

// Description is how a messenger introduces the bot before anyone writes
// to it: Text on the empty chat (Telegram's description, at most 512
// characters) and Short on the bot's profile and in shared links (at most
// 120).
type Description struct {
	Text, Short string
}

// Descriptions is the bot's introduction in Chinese and in English. It
// promises only what every deployment does: records and reminders are
// offered where they are configured.
func Descriptions() (zh, en Description) {
	zh = Description{
		Text: "您好！我是社保医保小助手，回答社会保险、医疗保险的政策问题，并注明依据的法律条文。\n" +
			"验证身份后，可以查看本人的缴费记录和医保个人账户余额，找出断缴月份，了解怎么补缴、要带什么材料。\n" +
			"我的回复中，身份证号和手机号都打码显示；发送 /forget 可删除验证关联和设置。\n" +
			"具体办理以当地社保、医保经办机构为准。",
		Short: "社保医保政策问答，注明法律依据；验证身份后可查本人缴费记录和补缴办法。身份证号、手机号打码显示。",
	}
	en = Description{
		Text: "Hello! I answer questions about social and medical insurance in China, citing the articles of law my answers rest on.\n" +
			"Once you verify who you are, I show your own contributions and medical-account balance, find missed months, and tell you how to make them up and what to bring.\n" +
			"My replies show ID numbers and phone numbers masked; /forget deletes your verification link and settings.\n" +
			"Your local social or medical insurance office has the final word.",
		Short: "Social and medical insurance in China: answers citing the law, and your records once verified. IDs and phones masked.",
	}
	return zh, en
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
	// "lang:en:start" is the welcome's button: the welcome is shown again
	// in the language chosen, in its place.
	arg, then, _ := strings.Cut(arg, ":")
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
	if then == "start" {
		if err := runStart(ctx, t, ""); err != nil {
			return err
		}
	} else {
		t.say(t.l("好的，之后用中文回复您。", "OK, I will reply in English from now on."))
	}
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
