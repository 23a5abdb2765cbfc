import type { Principal } from '../tokens/principal.js';

// The verified caller, set by JwtAuthGuard and read by @CurrentUser() and RolesGuard.
declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}
