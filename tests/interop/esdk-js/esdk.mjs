#!/usr/bin/env node
// esdk.mjs: a small CLI around the AWS Encryption SDK for JavaScript
// (@aws-crypto/client-node), used by run.sh to check that ward's messages and
// the JS SDK's messages are readable by each other.
//
//   node esdk.mjs encrypt|decrypt [--aes-key FILE] [--rsa-public PEM]
//        [--rsa-private PEM] [--namespace NS] [--aes-name NAME] [--rsa-name NAME]
//        [--oaep-hash sha1|sha256|sha384|sha512] [--suite 0478|0578] [--frame N]
//        [--context k=v]... --in FILE --out FILE
//
// Keyrings: --aes-key gives a RawAesKeyringNode (wrapping suite from the key
// length: 16/24/32 bytes); --rsa-public/--rsa-private give a RawRsaKeyringNode
// (RSA_PKCS1_OAEP_PADDING with --oaep-hash, default sha256). With both an AES
// and an RSA key, a MultiKeyringNode with AES as the generator.
// Commitment policy: REQUIRE_ENCRYPT_REQUIRE_DECRYPT.
//
// encrypt: --suite picks the algorithm suite (default 0478), --frame the frame
//          length (default 4096), --context pairs form the encryption context.
// decrypt: every --context pair must be in the decrypted header's encryption
//          context with the same value; if --suite / --frame are given, the
//          message's suite / frame length must equal them. The output file is
//          written only after the whole message decrypted and every check passed.
// --in - reads stdin, --out - writes stdout.
// Exit status: 0 ok, 1 crypto or check failure, 2 usage error.

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import esdk from '@aws-crypto/client-node';

const {
  buildClient,
  CommitmentPolicy,
  AlgorithmSuiteIdentifier,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  RawRsaKeyringNode,
  MultiKeyringNode,
} = esdk;

const PROG = 'esdk.mjs';

class UsageError extends Error {}

function usage() {
  return `usage: node ${PROG} encrypt|decrypt [--aes-key FILE] [--rsa-public PEM] [--rsa-private PEM]
       [--namespace NS] [--aes-name NAME] [--rsa-name NAME] [--oaep-hash sha1|sha256|sha384|sha512]
       [--suite 0478|0578] [--frame N] [--context k=v]... --in FILE --out FILE`;
}

function parseArgs(argv) {
  const opts = {
    mode: undefined,
    aesKey: undefined,
    rsaPublic: undefined,
    rsaPrivate: undefined,
    namespace: 'ward',
    aesName: 'raw-aes',
    rsaName: 'raw-rsa',
    oaepHash: 'sha256',
    suite: undefined,
    frame: undefined,
    context: [],
    in: undefined,
    out: undefined,
  };
  const valued = {
    '--aes-key': 'aesKey',
    '--rsa-public': 'rsaPublic',
    '--rsa-private': 'rsaPrivate',
    '--namespace': 'namespace',
    '--aes-name': 'aesName',
    '--rsa-name': 'rsaName',
    '--oaep-hash': 'oaepHash',
    '--suite': 'suite',
    '--frame': 'frame',
    '--in': 'in',
    '--out': 'out',
  };
  const args = argv.slice();
  if (args.length === 0) throw new UsageError('missing mode');
  opts.mode = args.shift();
  if (opts.mode === '-h' || opts.mode === '--help') {
    process.stdout.write(usage() + '\n');
    process.exit(0);
  }
  if (opts.mode !== 'encrypt' && opts.mode !== 'decrypt') {
    throw new UsageError(`unknown mode '${opts.mode}' (want encrypt or decrypt)`);
  }
  while (args.length > 0) {
    let a = args.shift();
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a === '--context' || valued[a]) {
      if (v === undefined) {
        if (args.length === 0) throw new UsageError(`${a} needs a value`);
        v = args.shift();
      }
      if (a === '--context') {
        const i = v.indexOf('=');
        if (i <= 0) throw new UsageError(`--context wants k=v, got '${v}'`);
        opts.context.push([v.slice(0, i), v.slice(i + 1)]);
      } else {
        opts[valued[a]] = v;
      }
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(usage() + '\n');
      process.exit(0);
    } else {
      throw new UsageError(`unknown argument '${a}'`);
    }
  }
  if (!opts.in) throw new UsageError('--in is required');
  if (!opts.out) throw new UsageError('--out is required');
  if (!opts.aesKey && !opts.rsaPublic && !opts.rsaPrivate) {
    throw new UsageError('give at least one key: --aes-key, --rsa-public or --rsa-private');
  }
  if (!['sha1', 'sha256', 'sha384', 'sha512'].includes(opts.oaepHash)) {
    throw new UsageError(`--oaep-hash must be sha1, sha256, sha384 or sha512, got '${opts.oaepHash}'`);
  }
  if (opts.suite !== undefined) {
    const s = opts.suite.toLowerCase().replace(/^0x/, '');
    if (s === '0478') {
      opts.suiteId = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;
    } else if (s === '0578') {
      opts.suiteId = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;
    } else {
      throw new UsageError(`--suite must be 0478 or 0578, got '${opts.suite}'`);
    }
  }
  if (opts.frame !== undefined) {
    if (!/^[0-9]+$/.test(opts.frame)) throw new UsageError(`--frame wants a positive integer, got '${opts.frame}'`);
    opts.frameLength = Number(opts.frame);
    if (opts.frameLength < 1 || opts.frameLength > 0xffffffff) {
      throw new UsageError(`--frame out of range: ${opts.frame}`);
    }
  }
  const seen = new Set();
  for (const [k] of opts.context) {
    if (seen.has(k)) throw new UsageError(`--context key '${k}' given twice`);
    seen.add(k);
  }
  return opts;
}

function readInput(name) {
  return name === '-' ? fs.readFileSync(0) : fs.readFileSync(name);
}

// Write only complete output: to a temporary file beside the target, then rename.
function writeOutput(name, data) {
  if (name === '-') {
    fs.writeSync(1, data);
    return;
  }
  const dir = path.dirname(path.resolve(name));
  const tmp = path.join(dir, `.${path.basename(name)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, data, { mode: 0o600 });
    fs.renameSync(tmp, name);
  } catch (e) {
    try { fs.unlinkSync(tmp); } catch { /* not there */ }
    throw e;
  }
}

function buildKeyring(opts) {
  const keyrings = [];
  if (opts.aesKey) {
    const key = fs.readFileSync(opts.aesKey);
    const suites = {
      16: RawAesWrappingSuiteIdentifier.AES128_GCM_IV12_TAG16_NO_PADDING,
      24: RawAesWrappingSuiteIdentifier.AES192_GCM_IV12_TAG16_NO_PADDING,
      32: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    };
    const wrappingSuite = suites[key.length];
    if (wrappingSuite === undefined) {
      throw new UsageError(`${opts.aesKey}: an AES key must be 16, 24 or 32 bytes, this one is ${key.length}`);
    }
    keyrings.push(new RawAesKeyringNode({
      keyNamespace: opts.namespace,
      keyName: opts.aesName,
      unencryptedMasterKey: new Uint8Array(key),
      wrappingSuite,
      // Sort the encryption context by UTF-8 bytes, as the spec and the C SDK do.
      utf8Sorting: true,
    }));
  }
  if (opts.rsaPublic || opts.rsaPrivate) {
    const rsaKey = {};
    if (opts.rsaPublic) rsaKey.publicKey = fs.readFileSync(opts.rsaPublic, 'utf8');
    if (opts.rsaPrivate) rsaKey.privateKey = fs.readFileSync(opts.rsaPrivate, 'utf8');
    if (opts.mode === 'encrypt' && !rsaKey.publicKey) {
      // A private key can encrypt too: derive its public half.
      rsaKey.publicKey = crypto.createPublicKey(rsaKey.privateKey).export({ type: 'spki', format: 'pem' });
    }
    if (opts.mode === 'decrypt' && !rsaKey.privateKey) {
      throw new UsageError('decrypt with RSA needs --rsa-private');
    }
    keyrings.push(new RawRsaKeyringNode({
      keyNamespace: opts.namespace,
      keyName: opts.rsaName,
      rsaKey,
      padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: opts.oaepHash,
    }));
  }
  if (keyrings.length === 1) return keyrings[0];
  const [generator, ...children] = keyrings;
  return new MultiKeyringNode({ generator, children });
}

function suiteHex(id) {
  return id.toString(16).padStart(4, '0');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const keyring = buildKeyring(opts);
  const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  const input = readInput(opts.in);

  if (opts.mode === 'encrypt') {
    const op = { encryptionContext: Object.fromEntries(opts.context) };
    if (opts.suiteId !== undefined) op.suiteId = opts.suiteId;
    if (opts.frameLength !== undefined) op.frameLength = opts.frameLength;
    const { result } = await encrypt(keyring, input, op);
    writeOutput(opts.out, result);
    return;
  }

  const { plaintext, messageHeader } = await decrypt(keyring, input);
  const problems = [];
  const ec = messageHeader.encryptionContext || {};
  for (const [k, v] of opts.context) {
    if (!Object.prototype.hasOwnProperty.call(ec, k)) {
      problems.push(`encryption context has no key '${k}'`);
    } else if (ec[k] !== v) {
      problems.push(`encryption context '${k}' is '${ec[k]}', expected '${v}'`);
    }
  }
  if (opts.suiteId !== undefined && messageHeader.suiteId !== opts.suiteId) {
    problems.push(`algorithm suite is ${suiteHex(messageHeader.suiteId)}, expected ${suiteHex(opts.suiteId)}`);
  }
  if (opts.frameLength !== undefined && messageHeader.frameLength !== opts.frameLength) {
    problems.push(`frame length is ${messageHeader.frameLength}, expected ${opts.frameLength}`);
  }
  if (problems.length > 0) {
    throw new Error(`${opts.in}: decrypted, but ${problems.join('; ')} (header context: ${JSON.stringify(ec)})`);
  }
  writeOutput(opts.out, plaintext);
}

main().catch((e) => {
  if (e instanceof UsageError) {
    process.stderr.write(`${PROG}: ${e.message}\n${usage()}\n`);
    process.exit(2);
  }
  process.stderr.write(`${PROG}: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
