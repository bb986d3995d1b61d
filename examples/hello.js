// The smallest labrun program: `labrun submit examples/hello.js`
exports.main = () => ({ hello: "world", node: process.version });
