// The types of dist/web/vendor/uqr.js: scripts/build-web.mjs copies the `uqr` package's ES
// module there (no bundler), and web/src imports it by that path, './vendor/uqr.js'.
export * from 'uqr';
