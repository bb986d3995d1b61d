import {
  MAX_RESULT_GROUP,
  MAX_RESULT_GROUP_BYTES,
  type Outcome,
  type ResultGroupResponse,
} from "../protocol/index.js";
import { CoordinatorError } from "./coordinator-api.js";

/** The two result routes, as CoordinatorApi calls them. */
export interface ResultRoutes {
  /**
   * `POST /results`: one result; rejects with the coordinator's refusal.
   * `json`, when given, is `{leaseId, outcome}` already serialised (the body).
   */
  postResult(leaseId: string, outcome: Outcome, json?: string): Promise<boolean>;
  /** `POST /results/group`: each entry the JSON text of one `{leaseId, outcome}`. */
  postResultGroup(results: readonly string[]): Promise<ResultGroupResponse["results"]>;
}

/**
 * A result larger than this goes alone, through the single route: grouping
 * saves a request, which is nothing beside the transfer of a large body, and
 * a group of large results would have to be split to fit its limit anyway.
 */
export const GROUP_ENTRY_MAX_BYTES = 1024 * 1024;
/** Room for `{"results":[…]}` and the commas between entries. */
const GROUP_BUDGET_BYTES = MAX_RESULT_GROUP_BYTES - 64 * 1024;

interface Pending {
  leaseId: string;
  outcome: Outcome;
  json: string;
  bytes: number;
  resolve: (accepted: boolean) => void;
  reject: (error: unknown) => void;
}

/**
 * Sends results to the coordinator in groups, River's batched completer on
 * the agent's side: a result posted while nothing is on its way goes at once
 * (on the next turn of the event loop, with whatever else became ready in
 * that turn), alone through the single route, so a lone job waits for
 * nothing; results that become ready while a request is on its way wait for
 * it to end and then go together in one `results/group` request (one commit
 * on the coordinator). At most one request is on its way at a time, so under
 * load the groups grow by themselves (back-pressure) and stay small when idle.
 *
 * `post` keeps the single route's meaning for every result: it resolves once
 * the coordinator has committed it, rejects with the same CoordinatorError a
 * single post would get (409 STALE_LEASE) and with the same network error for
 * all of a group that did not get through, so the caller's retry and drop
 * rules stay what they are. A coordinator without the group route (404) gets
 * single results from then on; a group it refuses as a whole (400, 413) is
 * sent again one result at a time, so each gets its own answer.
 *
 * @example
 * const groups = new ResultGroups(api);
 * await groups.post(leaseId, outcome); // true once committed
 */
export class ResultGroups {
  #pending: Pending[] = [];
  #inFlight = false;
  #scheduled = false;
  #groupsUnsupported = false;

  constructor(
    private readonly routes: ResultRoutes,
    /** Told once, when the coordinator turns out to have no group route. */
    private readonly onNoGroupRoute: () => void = () => {},
  ) {}

  /** Group requests sent so far (for tests and logs). */
  groupsSent = 0;

  post(leaseId: string, outcome: Outcome): Promise<boolean> {
    if (this.#groupsUnsupported) return this.routes.postResult(leaseId, outcome);
    const json = JSON.stringify({ leaseId, outcome });
    const bytes = Buffer.byteLength(json);
    if (bytes > GROUP_ENTRY_MAX_BYTES) return this.routes.postResult(leaseId, outcome);
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.push({ leaseId, outcome, json, bytes, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#inFlight || this.#scheduled || this.#pending.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#inFlight || this.#pending.length === 0) return;
    const group = this.#take();
    this.#inFlight = true;
    try {
      if (group.length === 1 || this.#groupsUnsupported) await this.#sendAlone(group);
      else await this.#sendGroup(group);
    } finally {
      this.#inFlight = false;
      this.#schedule();
    }
  }

  /** The oldest pending results that fit in one group. */
  #take(): Pending[] {
    let bytes = 0;
    let count = 0;
    for (const pending of this.#pending) {
      if (count === MAX_RESULT_GROUP || bytes + pending.bytes > GROUP_BUDGET_BYTES) break;
      bytes += pending.bytes + 1;
      count++;
    }
    return this.#pending.splice(0, Math.max(1, count));
  }

  /**
   * Each through the single route, side by side, as before groups existed;
   * the body is the text serialised when the result was sized, not a second
   * JSON.stringify of its outcome (up to a job's whole log) on the job's path.
   */
  async #sendAlone(results: Pending[]): Promise<void> {
    await Promise.all(
      results.map((pending) =>
        this.routes
          .postResult(pending.leaseId, pending.outcome, pending.json)
          .then(pending.resolve, pending.reject),
      ),
    );
  }

  async #sendGroup(group: Pending[]): Promise<void> {
    let answers: ResultGroupResponse["results"];
    try {
      this.groupsSent++;
      answers = await this.routes.postResultGroup(group.map((pending) => pending.json));
    } catch (error) {
      if (error instanceof CoordinatorError && error.status === 404) {
        this.#groupsUnsupported = true;
        this.onNoGroupRoute();
        return this.#sendAlone(group);
      }
      if (error instanceof CoordinatorError && (error.status === 400 || error.status === 413)) {
        // Refused as a whole (one result's shape or size): each alone gets its own answer.
        return this.#sendAlone(group);
      }
      for (const pending of group) pending.reject(error);
      return;
    }
    const byLease = new Map(answers.map((answer) => [answer.leaseId, answer]));
    const again: Pending[] = [];
    for (const pending of group) {
      const answer = byLease.get(pending.leaseId);
      if (answer?.accepted) pending.resolve(true);
      else if (answer?.error?.code === "STALE_LEASE") {
        pending.reject(new CoordinatorError(409, answer.error.code, answer.error.message));
      } else {
        // Left out of the answer, or refused for another reason: the single route decides.
        again.push(pending);
      }
    }
    if (again.length > 0) await this.#sendAlone(again);
  }
}
