import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'gatehouse:isPublic';

/** Opens a route to callers without an access token (every route is closed by default). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);
