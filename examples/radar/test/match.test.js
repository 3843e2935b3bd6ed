'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { parseAddresses, buildIndex, matchRecipient } = require('../src/match');
const { touchesOf, buildTimeline } = require('../src/timeline');
const config = require('../config/users.json');

test('parses display-name and bare addresses', () => {
  assert.deepStrictEqual(parseAddresses('Wile E. <Wile@Acme.example>, hank@globex.example, nobody'), [
    'wile@acme.example',
    'hank@globex.example',
  ]);
});

test('matches recipients to accounts and known contacts', () => {
  const index = buildIndex(config);
  assert.deepStrictEqual(matchRecipient(index, 'wile@acme.example'), { account: 'acc-acme', contact: 'wile@acme.example' });
  assert.deepStrictEqual(matchRecipient(index, 'new@globex-eu.example'), { account: 'acc-globex', contact: null });
  assert.strictEqual(matchRecipient(index, 'x@unknown.example'), null);
});

test('one touch per account per message; timeline newest first', () => {
  const index = buildIndex(config);
  const user = config.users[0];
  const msg = (id, to, at) => ({ id, internalDate: String(at), payload: { headers: [{ name: 'To', value: to }, { name: 'Subject', value: 's' }] } });
  const touches = [
    ...touchesOf(index, user, msg('a', 'wile@acme.example, other@acme.example', 1)),
    ...touchesOf(index, user, msg('b', 'wile@acme.example', 2)),
  ];
  assert.strictEqual(touches.length, 2);
  assert.deepStrictEqual(buildTimeline(touches).get('acc-acme').map((t) => t.messageId), ['b', 'a']);
});
