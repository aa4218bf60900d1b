// Package wechat connects the conversation engine to a WeChat Official
// Account (公众号). WeChat POSTs each message to the server as signed (in
// safe mode, encrypted) XML and waits five seconds; the adapter checks the
// signature, holds the message in shared storage, answers "success" at
// once and handles the message afterwards, one chat at a time across
// replicas, sending the replies through the customer-service API within
// WeChat's 48-hour window and its allowance of messages. It renders
// bot.Reply as plain text within WeChat's byte limit, with buttons as
// numbered choices.
//
// It is the only importer of github.com/silenceper/wechat/v2, and imports
// only its officialaccount packages and the credential, cache and util
// packages they rest on, never the root package: that one's init() sets
// the library's global logger to Debug on stdout, which would print every
// message's XML. No WeChat type crosses its boundary.
package wechat
