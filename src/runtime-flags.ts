import { setFlagsFromString } from 'node:v8';

// V8 settings of the server process, applied before anything else is loaded: main.ts imports
// this module first, and a flag only affects what is compiled after it is set.
//
// Prisma's query compiler is a WebAssembly module. V8 compiles it function by function with its
// baseline compiler (Liftoff) and, by default, recompiles the functions that run most with its
// optimising compiler (TurboFan) on background threads. Those functions run at start-up and
// then only when a query of a new shape is planned: plans are cached per shape, so a server at
// steady state hardly calls the compiler. The optimising compilations buy nothing measurable
// there (bench: guard, refresh, tenant_read), but their working memory, about 45 MiB of
// malloc'd memory, stays in the process's RSS after start-up (glibc keeps the freed arenas).
// A tiering budget no function reaches keeps the module on Liftoff.
setFlagsFromString('--wasm-tiering-budget=2000000000');
