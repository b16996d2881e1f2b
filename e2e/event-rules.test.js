// Event rules (RELAY_EVENT_RULES_FILE) in a real browser: the service runs with a rule that removes
// fields from the demo's public collection, the official web SDK subscribes through the relay,
// and the page's callback gets the document without those fields (and nothing of them crosses
// the page's socket), on a server the relay passes through and on one it translates for.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connectedFrame, pageState, setUp, signIn, subscribed, waitFor, waitForEvent } from './support.js';

const SECRET_EMAIL = 'ada-private@example.com';
const SECRET_STREET = '1 Secret Street';
const RULES = {
  rules: [{ channels: ['databases.*.collections.public.documents'], remove: ['email', 'address.street'] }],
};

for (const mode of ['cloud', '1.8']) {
  test(`event rules on ${mode}: a removed field never reaches the page, the others arrive`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'e2e-event-rules-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const rulesFile = join(dir, 'rules.json');
    await writeFile(rulesFile, JSON.stringify(RULES));
    const { demo, page, record, pageErrors } = await setUp(t, { mode, env: { RELAY_EVENT_RULES_FILE: rulesFile } });

    await signIn(page, demo.baseUrl, 'via=relay');
    const { config } = await pageState(page);
    const socket = await waitFor('the relayed socket connected as the demo user', () =>
      record.sockets.find((s) => connectedFrame(s)?.data?.user?.$id === config.user.id),
    );
    assert.deepEqual([...new URL(socket.url).searchParams.keys()], ['project'], 'the SDK talks to the relay');
    await waitFor('the subscription', () => subscribed(socket));

    const marker = `m-${Math.random().toString(36).slice(2)}`;
    const { delivered } = await demo.control('/realtime/publish', {
      channels: [config.publicChannel],
      events: [`${config.publicChannel}.d1.create`],
      payload: { $id: 'd1', marker, name: 'Ada', email: SECRET_EMAIL, address: { street: SECRET_STREET, city: 'London' } },
    });
    assert.ok(delivered >= 1, 'Appwrite delivered the event to the relay');

    const event = await waitForEvent(page, marker);
    assert.deepEqual(event.payload, { $id: 'd1', marker, name: 'Ada', address: { city: 'London' } });
    assert.ok(event.channels.includes(config.publicChannel));
    const wire = JSON.stringify(socket.received);
    assert.ok(!wire.includes(SECRET_EMAIL) && !wire.includes(SECRET_STREET), 'the removed values never crossed the socket');
    assert.deepEqual(pageErrors, []);
  });
}
