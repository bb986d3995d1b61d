// ESM works too (.mjs, or `export` syntax in a .js file):
// `labrun submit examples/primes.mjs --input 50`
export default {
  main(limit) {
    const primes = [];
    for (let n = 2; primes.length < (limit ?? 10); n++) {
      if (primes.every((p) => n % p !== 0)) primes.push(n);
    }
    return primes;
  },
};
