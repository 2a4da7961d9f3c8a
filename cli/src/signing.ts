// Plan signing: a detached Ed25519 signature over a plan file's bytes, so that
// the plan `apply` runs is the plan that was reviewed.
//
// A plan's digests prove nothing about who wrote it: they are plain SHA-256
// anyone can recompute after an edit. In CI, `mclc plan --out F --sign-key K`
// writes `F.sig` with a private key only the planning job holds, and
// `mclc apply F --verify-key P` (or MCL_PLAN_VERIFY_KEY=P) refuses a plan that
// has no signature, was signed with another key, or changed after signing.
// Keys are PEM files as OpenSSL writes them (spec/cli.md, "Plan signing").

import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { CliError, ExitCode } from './exit';
import { displayPath, readText } from './files';

/** The signature file next to a plan file. */
export const signaturePath = (planFile: string): string => `${planFile}.sig`;

export const SIGNATURE_FORMAT_VERSION = '1.0';

export interface PlanSignature {
  format_version: string;
  algorithm: 'ed25519';
  /** sha256 of the public key (DER SubjectPublicKeyInfo), to name the key that signed. */
  key_sha256: string;
  /** Base64 of the Ed25519 signature over the plan file's bytes. */
  signature: string;
}

const KEY_HINT = 'Create a key pair with `openssl genpkey -algorithm ed25519 -out plan-signing.pem` and `openssl pkey -in plan-signing.pem -pubout -out plan-signing.pub`.';

function loadKey(path: string, cwd: string, kind: 'private' | 'public'): KeyObject {
  const text = readText(path, cwd, `${kind} key file`);
  let key: KeyObject;
  try {
    // A private key file also gives its public key, so either may verify.
    key = kind === 'private' ? createPrivateKey(text) : createPublicKey(text);
  } catch (e) {
    throw new CliError(`${displayPath(cwd, path)} is not a PEM ${kind} key: ${(e as Error).message}`, ExitCode.Invalid, KEY_HINT);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CliError(`${displayPath(cwd, path)} is an ${key.asymmetricKeyType ?? 'unknown'} key; plans are signed with Ed25519 keys`, ExitCode.Invalid, KEY_HINT);
  }
  return key;
}

function keyDigest(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** The signature file's text for a plan file's text, signed with the private key in `keyFile`. */
export function signPlan(planText: string, keyFile: string, cwd: string): string {
  const key = loadKey(keyFile, cwd, 'private');
  const sig: PlanSignature = {
    format_version: SIGNATURE_FORMAT_VERSION,
    algorithm: 'ed25519',
    key_sha256: keyDigest(key),
    signature: sign(null, Buffer.from(planText, 'utf8'), key).toString('base64'),
  };
  return JSON.stringify(sig, null, 2) + '\n';
}

/**
 * Checks the signature of a plan file against the public key in `keyFile`;
 * throws a CliError (exit 1) saying what is wrong: no signature, a signature
 * by another key, or a plan changed after it was signed.
 */
export function verifyPlanSignature(planText: string, planFile: string, keyFile: string, cwd: string): void {
  const key = loadKey(keyFile, cwd, 'public');
  const sigFile = signaturePath(planFile);
  const shown = displayPath(cwd, planFile);
  const resign = 'Apply only plans written and signed by the planning job: `mclc plan --out FILE --sign-key KEY`.';
  let sigText: string;
  try {
    sigText = readText(sigFile, cwd, 'plan signature');
  } catch {
    throw new CliError(`${shown} is not signed: ${displayPath(cwd, sigFile)} is missing, and a signature is required (--verify-key)`, ExitCode.Invalid, resign);
  }
  let sig: Partial<PlanSignature>;
  try {
    sig = JSON.parse(sigText) as Partial<PlanSignature>;
  } catch {
    sig = {};
  }
  if (sig === null || typeof sig !== 'object' || sig.algorithm !== 'ed25519' || typeof sig.signature !== 'string' || typeof sig.key_sha256 !== 'string') {
    throw new CliError(`${displayPath(cwd, sigFile)} is not a plan signature`, ExitCode.Invalid, resign);
  }
  const expected = keyDigest(key);
  if (sig.key_sha256 !== expected) {
    throw new CliError(
      `${shown} was signed with another key (sha256 ${sig.key_sha256.slice(0, 16)}..., the verifying key is ${expected.slice(0, 16)}...)`,
      ExitCode.Invalid,
      resign,
    );
  }
  if (!verify(null, Buffer.from(planText, 'utf8'), key, Buffer.from(sig.signature, 'base64'))) {
    throw new CliError(`${shown} does not match its signature: the plan file was changed after it was signed`, ExitCode.Invalid, resign);
  }
}
