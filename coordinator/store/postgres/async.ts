/**
 * `T` with every method answering a promise: `m(...args): R` becomes
 * `m(...args): Promise<R>`. The PostgreSQL store is typed `Async<Store>`
 * until the Store interface itself is asynchronous; then this is `Store`.
 */
export type Async<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : T[K];
};
