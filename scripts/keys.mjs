// `npm run keys`: prints a new JWT signing key, password pepper and MFA encryption key for production, as
// shell-ready KEY=value lines (node:crypto only, nothing written anywhere). Give every instance
// the same values, e.g. `npm run --silent keys > gatehouse.env` then `set -a; . ./gatehouse.env`.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString().trim();
// One line, its line breaks written as "\n": a shell keeps them literally inside the single
// quotes (PEM has no quote to escape), and so do env files (docker --env-file even keeps the
// quotes, which JWT_KEYS looks past); JWT_KEYS reads "\n" back as line breaks.
const jwtKeys = pem.replace(/\r?\n/g, '\\n');
const pepper = randomBytes(32).toString('base64url');
const mfaKey = randomBytes(32).toString('hex');

process.stdout.write(
  [
    '# Gatehouse production secrets: the same on every instance; keep them out of version control.',
    '# JWT_KEYS: ES256 (P-256) private key that signs access tokens. To rotate, put a new key',
    '# first and keep the old one after it until the tokens it signed have expired.',
    `JWT_KEYS='${jwtKeys}'`,
    '# PASSWORD_PEPPER: 32 random bytes. Keep it: stored password hashes verify only with it.',
    `PASSWORD_PEPPER=${pepper}`,
    '# MFA_ENCRYPTION_KEYS: AES-256 key that encrypts TOTP secrets at rest. To rotate, put a new',
    '# key first (comma-separated) and keep the old one until every secret has moved to the new one.',
    `MFA_ENCRYPTION_KEYS=${mfaKey}`,
    '',
  ].join('\n'),
);
