-- V20: notices (issue 12, after review).
-- * The non-acceptance notice (不予受理告知, 信访工作条例 (2022) art. 23) is sent like the others.
-- * The shipped texts promised every citizen an online lookup "with the receipt code and the
--   password", which only citizens who submitted online hold: they now say so, and name the
--   other ways to follow a case. Templates an admin changed (updated_by set) are left as they are.

ALTER TABLE outbox DROP CONSTRAINT outbox_notice_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_notice_check
    CHECK (notice IN ('acknowledgement', 'reply', 'follow_up_request', 'question', 'extension', 'non_acceptance'));
ALTER TABLE notice_templates DROP CONSTRAINT notice_templates_notice_check;
ALTER TABLE notice_templates ADD CONSTRAINT notice_templates_notice_check
    CHECK (notice IN ('acknowledgement', 'reply', 'follow_up_request', 'question', 'extension', 'non_acceptance'));

INSERT INTO notice_templates (notice, channel, subject, body) VALUES
 ('non_acceptance', 'sms', '不予受理告知',
  '【回音】您反映的问题（{receipt_code}）不予受理，理由：{reason}'),
 ('non_acceptance', 'email', '不予受理告知（{receipt_code}）',
  E'您好：\n\n您反映的问题（受理编号 {receipt_code}）经审查不予受理，理由如下：\n\n{reason}\n\n如有疑问，请联系镇纪委纠风工作专班。\n\n镇纪委纠风工作专班');

UPDATE notice_templates SET body = v.body FROM (VALUES
 ('acknowledgement', 'sms',
  '【回音】您反映的问题已受理，受理编号{receipt_code}，我们将于{due_date}前答复。网上提交的可凭受理编号和查询密码查询进度，也可来电来访查询。'),
 ('acknowledgement', 'email',
  E'您好：\n\n您反映的问题已受理，受理编号 {receipt_code}。我们将于 {due_date} 前答复您。\n网上提交的可凭受理编号和查询密码随时查询办理进度，也可凭受理编号来电来访查询。\n\n镇纪委纠风工作专班'),
 ('reply', 'sms',
  '【回音】您反映的问题（{receipt_code}）已办理，答复如下：{reply} 我们将回访听取您的评价，网上提交的也可凭受理编号在网上评价。'),
 ('reply', 'email',
  E'您好：\n\n您反映的问题（受理编号 {receipt_code}）已办理，答复如下：\n\n{reply}\n\n我们将回访听取您的评价（满意、基本满意、不满意）；网上提交的也可凭受理编号和查询密码在网上评价。\n\n镇纪委纠风工作专班'),
 ('follow_up_request', 'sms',
  '【回音】我们未能电话联系到您。请回电告知您对答复（{receipt_code}）的评价，网上提交的也可在网上评价，感谢支持。'),
 ('follow_up_request', 'email',
  E'您好：\n\n我们就您反映的问题（受理编号 {receipt_code}）回访未能联系到您。请回电或回信告知您的评价；网上提交的也可凭受理编号和查询密码在网上评价。\n\n镇纪委纠风工作专班'),
 ('question', 'sms',
  '【回音】关于您反映的问题（{receipt_code}），承办单位想了解：{question} 网上提交的请凭受理编号在网上回复，也可来电告知。'),
 ('question', 'email',
  E'您好：\n\n关于您反映的问题（受理编号 {receipt_code}），承办单位想了解：\n\n{question}\n\n网上提交的请凭受理编号和查询密码在网上回复，也可来电来信告知。\n\n镇纪委纠风工作专班'),
 ('extension', 'sms',
  '【回音】您反映的问题（{receipt_code}）情况较复杂，办理期限经批准延长，我们将于{due_date}前答复，敬请谅解。'),
 ('extension', 'email',
  E'您好：\n\n您反映的问题（受理编号 {receipt_code}）情况较复杂，办理期限经批准延长，我们将于 {due_date} 前答复您。\n\n镇纪委纠风工作专班')
) AS v(notice, channel, body)
WHERE notice_templates.notice = v.notice AND notice_templates.channel = v.channel AND notice_templates.updated_by IS NULL;
