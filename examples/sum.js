// Reads its input: `labrun submit examples/sum.js --input '{"a":2,"b":3}'`
exports.main = async (input) => ({ sum: input.a + input.b });
