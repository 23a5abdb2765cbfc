import { Global, Module } from '@nestjs/common';
import { EventBus } from './event-bus.js';

/** The typed event bus, in process and across instances over Redis. */
@Global()
@Module({ providers: [EventBus], exports: [EventBus] })
export class EventsModule {}
