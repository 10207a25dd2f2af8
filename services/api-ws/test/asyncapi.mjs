// Holds what the real clients see to pkg/apidoc/asyncapi.yaml: every event a
// socket receives, every ack and every connection refusal is validated with
// ajv against the document's payload schemas (which $ref openapi.yaml), and an
// event name the document does not send is a violation. watch() hooks a
// socket (4.x or 2.x); stack.mjs watches every tracked socket and fails the
// file when a violation was recorded.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const docs = path.resolve(here, '../../../pkg/apidoc');
// A base URI so that asyncapi.yaml's relative "openapi.yaml#/..." refs resolve.
const base = 'https://mop.invalid/apidoc/';

const openapi = parse(readFileSync(path.join(docs, 'openapi.yaml'), 'utf8'));
const asyncapi = parse(readFileSync(path.join(docs, 'asyncapi.yaml'), 'utf8'));

// The documents are not JSON Schemas themselves (openapi, paths, ...), only
// their schema objects are: no meta-schema check of the whole, no strict mode.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
addFormats(ajv);
ajv.addSchema(openapi, `${base}openapi.yaml`);
ajv.addSchema(asyncapi, `${base}asyncapi.yaml`);

const pointer = (...parts) => parts.map((p) => String(p).replaceAll('~', '~0').replaceAll('/', '~1')).join('/');
const compile = (ptr) => ajv.compile({ $ref: `${base}asyncapi.yaml#/${ptr}` });

/** The component message key a #/channels/<c>/messages/<m> reference leads to. */
function componentKey(ref) {
  const [, channel, , msg] = ref.replace(/^#\//, '').split('/');
  const target = asyncapi.channels?.[channel]?.messages?.[msg]?.$ref ?? '';
  const key = target.replace('#/components/messages/', '');
  if (!asyncapi.components.messages[key]) throw new Error(`asyncapi.yaml: ${ref} leads nowhere`);
  return key;
}

/** name -> validator of the events the server sends, and of the acks of the events it receives. */
export const sent = new Map();
export const acks = new Map();
/** name -> validator of the payload of each event the server receives. */
export const requests = new Map();
for (const [opName, op] of Object.entries(asyncapi.operations)) {
  if (op.action === 'send') {
    for (const m of op.messages) {
      const key = componentKey(m.$ref);
      sent.set(asyncapi.components.messages[key].name, compile(pointer('components', 'messages', key, 'payload')));
    }
  } else if (op.action === 'receive') {
    for (const m of op.messages) {
      const reqKey = componentKey(m.$ref);
      const name = asyncapi.components.messages[reqKey].name;
      requests.set(name, compile(pointer('components', 'messages', reqKey, 'payload')));
      if (!op.reply) throw new Error(`asyncapi.yaml: ${opName} has no reply (every client event is acknowledged)`);
      const key = componentKey(op.reply.messages[0].$ref);
      acks.set(name, compile(pointer('components', 'messages', key, 'payload')));
    }
  }
}
// An event the server does not handle is answered unknown_event.
const ackError = compile(pointer('components', 'schemas', 'AckError'));

export const violations = [];
export const stats = { events: 0, acks: 0, refusals: 0 };

function report(kind, name, data, errors) {
  const why = errors.map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`).join('; ');
  violations.push(`${kind} ${name}: ${why}\n  payload: ${JSON.stringify(data)?.slice(0, 500)}`);
}

/** Validates an event the server sent; returns the problems (empty: valid). */
export function checkEvent(name, data) {
  stats.events++;
  const v = sent.get(name);
  if (!v) return fail('event', name, data, [{ message: 'is not an event asyncapi.yaml sends' }]);
  return v(data) ? [] : fail('event', name, data, v.errors);
}

/** Validates the ack of a client event name. */
export function checkAck(name, data) {
  stats.acks++;
  const v = acks.get(name);
  if (!v) {
    const known = ackError(data) && data.error.code === 'unknown_event';
    return known ? [] : fail('ack', name, data, ackError.errors ?? [{ message: 'an undocumented event must be answered unknown_event' }]);
  }
  return v(data) ? [] : fail('ack', name, data, v.errors);
}

/**
 * Validates the payload of a client event the server accepted (ok: true): if
 * the document calls it invalid, the document is stricter than the server.
 */
export function checkAccepted(name, payload) {
  const v = requests.get(name);
  if (!v || v(payload)) return [];
  return fail('accepted request', name, payload, v.errors);
}

/** Validates a 4.x connect_error raised by the server (message and data). */
export function checkConnectError(err) {
  stats.refusals++;
  return checkEvent('connect_error', { message: err.message, ...(err.data === undefined ? {} : { data: err.data }) });
}

function fail(kind, name, data, errors) {
  report(kind, name, data, errors);
  return violations.slice(-1);
}

/**
 * Hooks a socket.io-client socket (4.x or 2.x) so that every event it
 * receives, every ack and every server refusal is validated. The hooks sit on
 * the socket's own packet methods, so they see acks however the test asks for
 * them (callback, timeout(), emitWithAck) and events whether or not the test
 * listens.
 */
export function watch(socket) {
  const pending = new Map(); // ack id -> event name
  const { packet, onevent, onack } = socket;
  socket.packet = function hooked(p) {
    if (p.id !== undefined && Array.isArray(p.data)) pending.set(p.id, { name: p.data[0], payload: p.data[1] });
    return packet.call(this, p);
  };
  socket.onevent = function hooked(p) {
    checkEvent(p.data[0], p.data[1]);
    return onevent.call(this, p);
  };
  socket.onack = function hooked(p) {
    const asked = pending.get(p.id);
    if (asked) {
      pending.delete(p.id);
      checkAck(asked.name, p.data[0]);
      if (p.data[0]?.ok === true) checkAccepted(asked.name, asked.payload);
    }
    return onack.call(this, p);
  };
  if (typeof socket.onAny === 'function') {
    // 4.x: the server's refusals are connect_error Errors without a type;
    // the client's own (transport, timeout) carry one.
    socket.on('connect_error', (err) => { if (err.type === undefined && err.message !== 'timeout') checkConnectError(err); });
  } else {
    // 2.x: a refusal is an `error` event carrying the server's data; the
    // client's own errors (transport) arrive on it too, as Error objects.
    socket.on('error', (data) => {
      if (data instanceof Error) return;
      stats.refusals++;
      checkEvent('error', data);
    });
  }
  return socket;
}
