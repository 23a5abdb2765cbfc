import { USER_SCOPES } from '../common/scopes.js';

/**
 * The scopes Gatehouse knows (contract v2 §C; the list lives in common/ so that the
 * configuration can check USER_TOKEN_SCOPES against it). A user token without a `scope`
 * claim (every v1 token) counts as carrying USER_TOKEN_SCOPES: the admin role still gates
 * the admin scopes.
 */
export {
  BUILT_IN_SCOPES,
  CLIENT_ONLY_SCOPES,
  USER_SCOPES,
  isBuiltInScope,
  type BuiltInScope,
} from '../common/scopes.js';

/** The scopes of user tokens: USER_TOKEN_SCOPES, or every user scope. */
export function userTokenScopes(config: { USER_TOKEN_SCOPES?: readonly string[] | undefined }): readonly string[] {
  return config.USER_TOKEN_SCOPES ?? USER_SCOPES;
}
