import { Module } from '@nestjs/common';
import { RealtimeGateway } from './realtime.gateway.js';

/** Real-time events over WebSocket (contract v2 §F); left out when WS_ENABLED=false. */
@Module({ providers: [RealtimeGateway], exports: [RealtimeGateway] })
export class RealtimeModule {}
