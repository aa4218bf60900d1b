package redisstore

import (
	"strconv"

	"github.com/shebao/shebao/bot"
)

// tg is the identity of a Telegram chat or user id: "tg:42".
func tg(id int64) string { return bot.ID(bot.ChannelTelegram, strconv.FormatInt(id, 10)) }

// untg is the number of a Telegram identity (0 for anything else).
func untg(id string) int64 {
	n, _ := strconv.ParseInt(bot.Local(id), 10, 64)
	return n
}
