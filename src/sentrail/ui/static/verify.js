/* Provenance badges, verified in this browser (WebCrypto SHA-256 and Ed25519).
   Nothing here trusts the server's verdict: from the run's log entries, the exact stored
   payloads, a C2SP signed checkpoint and RFC 9162 inclusion proofs, it recomputes
     1. each payload's SHA-256 (the digest the log entry commits to),
     2. each leaf and the run's hash chain from GENESIS: version 2 leaves
        (sentrail.evidence.leaf.v2: tenant, app, run, event id, kind, seq, received_at as
        IEEE 754 binary64, the sealed flag, digest, previous link) and version 1 for
        events stored before schema v5, byte for byte as sentrail.evidence.chain does,
     3. each inclusion proof up to the checkpoint's root hash,
     4. the checkpoint note's Ed25519 signature under the verifier key the user pinned
        (settings page; kept in localStorage, never taken from the server), for the
        tenant log's origin "<key name>/<tenant>" (or the key's own name: checkpoints
        signed before per-tenant origins),
   and which step each entry carries (read from the verified payload itself). */
"use strict";
(function () {
  const PIN = "sentrail.verifierKey";
  const enc = new TextEncoder();
  const LEAF_DOMAIN = enc.encode("sentrail.evidence.leaf.v1\u0000");
  const LEAF_DOMAIN_V2 = enc.encode("sentrail.evidence.leaf.v2\u0000");
  const SEALED_FLAG = 0x01;
  const CHAIN_DOMAIN = enc.encode("sentrail.evidence.chain.v1\u0000");

  function concat(parts) {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }
  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function unhex(text) {
    if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not hex");
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  }
  function unb64(text) {
    const bin = atob(text);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  function same(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  function str(s) {
    const b = enc.encode(s);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, b.length);
    return concat([len, b]);
  }
  function u64(n) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    return b;
  }
  function f64(x) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x);
    return b;
  }
  /* Python's urllib.parse.quote(s, safe=""): UTF-8, all but A-Z a-z 0-9 _ . - ~ as %XX. */
  function quote(s) {
    return Array.from(enc.encode(s), (b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9_.~-]/.test(c) ? c : "%" + b.toString(16).toUpperCase().padStart(2, "0");
    }).join("");
  }

  /* The leaf data of one event (sentrail.evidence.chain.EventLeaf.leaf_data). */
  function leafData(doc, e, digest, prev) {
    if (e.leaf_version === 2) {
      if (typeof e.received_at !== "number" || !Number.isFinite(e.received_at)) throw new Error("malformed received_at");
      return concat([LEAF_DOMAIN_V2, str(doc.tenant), str(doc.app_id), str(doc.run_id), str(e.event_id),
        str(e.kind), u64(e.seq), f64(e.received_at), new Uint8Array([e.sealed ? SEALED_FLAG : 0]), digest, prev]);
    }
    if (e.leaf_version === 1) {
      return concat([LEAF_DOMAIN, str(doc.tenant), str(doc.run_id), str(e.event_id), str(e.kind), u64(e.seq), digest, prev]);
    }
    throw new Error("unknown leaf version " + e.leaf_version);
  }

  /* The C2SP key id of an Ed25519 key under a name: SHA-256(name "\n" 0x01 key)[:4]. */
  async function keyId(name, pub) {
    return (await sha256(concat([enc.encode(name + "\n"), new Uint8Array([1]), pub]))).slice(0, 4);
  }

  /* name+keyid(8 hex)+base64(0x01 || 32-byte Ed25519 key); the key id is checked too. */
  async function parseVerifierKey(text) {
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(text);
    if (!m) throw new Error("the pinned key is not name+keyid+base64");
    const [, name, id, b64] = m;
    const raw = unb64(b64);
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("the pinned key is not an Ed25519 key");
    const pub = raw.slice(1);
    if (hex(await keyId(name, pub)) !== id) throw new Error("the pinned key's id does not match its key");
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    return { name, pub, key };
  }

  /* A C2SP signed note: text, a blank line, signature lines "— name base64(kid || sig)".
     The origin (first line) is the tenant's log, "<pinned key name>/<tenant>", or the
     pinned key's own name (checkpoints from before per-tenant origins); the pinned key
     must have signed it under that name (sentrail.evidence.checkpoint.log_verifiers). */
  async function openCheckpoint(note, pinned, tenant) {
    const cut = note.indexOf("\n\n");
    if (cut < 0) throw new Error("the checkpoint is not a signed note");
    const text = note.slice(0, cut + 1);
    const origin = text.slice(0, text.indexOf("\n"));
    if (origin !== pinned.name + "/" + quote(tenant) && origin !== pinned.name) {
      throw new Error("the checkpoint is not of this tenant's log under the pinned key");
    }
    const kid = await keyId(origin, pinned.pub);
    let ok = false;
    for (const line of note.slice(cut + 2).split("\n")) {
      if (!line.startsWith("\u2014 ")) continue;
      const [name, b64] = line.slice(2).split(" ");
      if (name !== origin) continue;
      const blob = unb64(b64);
      if (blob.length !== 68 || !same(blob.slice(0, 4), kid)) continue;
      ok = await crypto.subtle.verify({ name: "Ed25519" }, pinned.key, blob.slice(4), enc.encode(text));
      if (!ok) throw new Error("the checkpoint's signature by the pinned key does not verify");
    }
    if (!ok) throw new Error("the checkpoint is not signed by the pinned key");
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("malformed checkpoint");
    const root = unb64(lines[2]);
    if (root.length !== 32) throw new Error("malformed checkpoint root");
    return { origin: lines[0], size: Number(lines[1]), root };
  }

  /* RFC 9162 section 2.1.3.2. */
  async function verifyInclusion(leaf, index, size, proof, root) {
    if (index >= size) return false;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of proof) {
      if (sn === 0 || p.length !== 32) return false;
      if (fn & 1 || fn === sn) {
        r = await sha256(concat([new Uint8Array([1]), p, r]));
        if (!(fn & 1)) {
          while (fn !== 0 && !(fn & 1)) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await sha256(concat([new Uint8Array([1]), r, p]));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && same(r, root);
  }

  function parsePayloads(buf) {
    const view = new DataView(buf);
    const out = new Map();
    let o = 0;
    while (o + 12 <= buf.byteLength) {
      const seq = Number(view.getBigUint64(o));
      const len = view.getUint32(o + 8);
      o += 12;
      if (len === 0xffffffff) { out.set(seq, null); continue; }
      if (o + len > buf.byteLength) throw new Error("truncated payload stream");
      out.set(seq, new Uint8Array(buf, o, len));
      o += len;
    }
    return out;
  }

  function stepsIn(kind, payload) {
    if (payload === null) return [];
    try {
      const doc = JSON.parse(new TextDecoder().decode(payload));
      if (kind === "trace" && Array.isArray(doc.steps)) return doc.steps.map((s) => s && s.step_index);
      if (kind === "step" && doc.step) return [doc.step.step_index];
    } catch (e) { /* not JSON: it carries no step */ }
    return [];
  }

  async function verifyRun(doc, payloads, pinned) {
    const results = new Map();
    let cp = null, cpError = null;
    if (doc.checkpoint) {
      try { cp = await openCheckpoint(doc.checkpoint.note, pinned, doc.tenant); } catch (e) { cpError = e.message; }
    } else { cpError = "no signed checkpoint yet"; }
    let chain = new Uint8Array(32);
    let version = 1;
    for (const e of doc.events) {
      const r = { state: "ok", why: "", steps: [], version: e.leaf_version };
      const payload = payloads.has(e.seq) ? payloads.get(e.seq) : null;
      const digest = unhex(e.payload_sha256), prev = unhex(e.prev_hash);
      if (payload !== null && !same(await sha256(payload), digest)) {
        r.state = "bad"; r.why = "the stored payload does not hash to the logged digest";
      }
      r.steps = stepsIn(e.kind, payload);
      let data;
      try { data = leafData(doc, e, digest, prev); } catch (err) {
        r.state = "bad"; r.why = err.message; results.set(e.seq, r); continue;
      }
      if (e.leaf_version < version) { r.state = "bad"; r.why = "a version 1 leaf after version 2 (a rewritten entry)"; }
      version = Math.max(version, e.leaf_version);
      if (!same(prev, chain)) { r.state = "bad"; r.why = "the run's hash chain is broken before this entry"; }
      chain = await sha256(concat([CHAIN_DOMAIN, prev, await sha256(data)]));
      if (hex(chain) !== e.chain_hash && r.state === "ok") { r.state = "bad"; r.why = "the chain link does not recompute"; }
      const leaf = await sha256(concat([new Uint8Array([0]), data]));
      if (r.state === "ok") {
        if (cpError) { r.state = cp ? "pending" : "bad"; r.why = cpError; }
        else if (e.seq >= cp.size || !e.proof) { r.state = "pending"; r.why = "not yet in a signed checkpoint"; }
        else if (!(await verifyInclusion(leaf, e.seq, cp.size, e.proof.map(unb64), cp.root))) {
          r.state = "bad"; r.why = "the inclusion proof does not lead to the signed root";
        }
      }
      if (r.state === "ok" && payload === null) { r.state = "ok"; r.why = "redacted payload: the digest is what is proven"; }
      results.set(e.seq, r);
    }
    return { results, cp, cpError };
  }

  const LABEL = {
    ok: ["✓", "verified in a signed checkpoint"],
    pending: ["…", "not yet in a signed checkpoint"],
    bad: ["✗", "verification FAILED"],
    unpinned: ["?", "no verifier key pinned: not verified"],
    error: ["✗", "could not verify"],
  };
  function badge(el, state, why) {
    el.dataset.state = state;
    el.querySelector(".prov-icon").textContent = LABEL[state][0];
    el.querySelector(".prov-text").textContent = LABEL[state][1] + (why ? " (" + why + ")" : "");
  }

  async function run() {
    const facts = document.getElementById("run-facts");
    if (!facts) return;
    const badges = Array.from(document.querySelectorAll("[data-prov]"));
    const summary = document.getElementById("prov-summary");
    const pin = localStorage.getItem(PIN);
    if (!pin) {
      badges.forEach((b) => badge(b, "unpinned", ""));
      if (summary) summary.textContent = "No verifier key is pinned in this browser: pin one on the Verifier key page.";
      return;
    }
    try {
      const pinned = await parseVerifierKey(pin);
      const [doc, buf] = await Promise.all([
        fetch(facts.dataset.proofSrc, { credentials: "same-origin" }).then((r) => { if (!r.ok) throw new Error("proofs: HTTP " + r.status); return r.json(); }),
        fetch(facts.dataset.payloadSrc, { credentials: "same-origin" }).then((r) => { if (!r.ok) throw new Error("payloads: HTTP " + r.status); return r.arrayBuffer(); }),
      ]);
      const { results, cp, cpError } = await verifyRun(doc, parsePayloads(buf), pinned);
      const states = Array.from(results.values()).map((r) => r.state);
      const runState = states.includes("bad") ? "bad" : states.includes("pending") ? "pending" : states.length ? "ok" : "error";
      for (const b of badges) {
        if (b.dataset.prov === "run") { badge(b, runState, runState === "bad" ? (Array.from(results.values()).find((r) => r.state === "bad") || {}).why : ""); continue; }
        const step = Number(b.dataset.provTarget);
        const seq = doc.step_events[String(step)];
        const r = seq === undefined ? null : results.get(seq);
        if (!r) { badge(b, "error", "no log entry carries this step"); continue; }
        if (!r.steps.includes(step)) { badge(b, "bad", "the verified entry does not carry this step"); continue; }
        badge(b, r.state, r.state === "ok" ? "entry " + seq : r.why);
      }
      document.querySelectorAll("#prov-events tr[data-seq]").forEach((tr) => {
        const r = results.get(Number(tr.dataset.seq));
        const cell = tr.querySelector(".prov-cell");
        if (r && cell) { cell.textContent = LABEL[r.state][0] + " " + LABEL[r.state][1] + (r.why ? " (" + r.why + ")" : ""); cell.dataset.state = r.state; }
      });
      if (summary) {
        summary.textContent = cp
          ? "Checkpoint of " + cp.origin + " at tree size " + cp.size + " verified with the pinned key. Run: " + LABEL[runState][1] + "."
          : "Checkpoint not verified: " + cpError;
        summary.dataset.state = runState;
      }
    } catch (e) {
      badges.forEach((b) => badge(b, "error", e.message));
      if (summary) summary.textContent = "Could not verify: " + e.message;
    }
  }
  document.addEventListener("DOMContentLoaded", run);
})();
