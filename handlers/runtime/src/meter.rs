//! The remote-call meter: how many calls the handler made to its cloud and to its stores, how long
//! it waited on them, and how much of its thread's CPU time ran inside them. The handler's
//! own CPU for an event is then its thread's CPU time minus the CPU inside remote calls
//! (request building, signing, the HTTP client, the kernel's socket work, parsing answers):
//! what `make bench` reports and what the function logs per event.
//!
//! One [`RemoteCallMeter`] is shared by every cloud SDK client (each cloud's adapter marks
//! its calls with [`RemoteCallMeter::begin_call`] / [`RemoteCallMeter::begin_transmit`]; on
//! AWS an SDK interceptor in `escher-aws`) and every store operator (an opendal layer,
//! [`RemoteCallMeter::store_layer`]). It keeps running totals, [`RemoteCalls`]; the
//! difference of two snapshots is what happened in between: one event, when events are
//! handled one at a time, as a Lambda function does.
//!
//! Two spans are metered, each as the time during which at least one call was in flight
//! (overlapping calls count once):
//! - **call**: an SDK call from `read_before_execution` to `read_after_execution`
//!   (serialize, sign, send, wait, parse, retries), or from the first poll of its `send()`
//!   future when it runs through [`RemoteCallMeter::call`] (the handler's calls do: the
//!   SDK's assembling of the operation before the interceptors run is part of the call);
//!   a store operation (stat, read, a
//!   writer's write and close, a lister's next page, a deleter's flush) from the moment
//!   opendal is handed it to its end (build the request, sign, send, wait, parse), the same
//!   extent as an SDK call.
//! - **transmit**: an SDK attempt from `read_before_transmit` to `read_after_transmit` (or
//!   the attempt's end, when it failed); a store request from handing it to the HTTP
//!   transport to the end of its response body.
//!
//! CPU is the CPU time of the thread a span began on, read when it begins and ends. On a
//! current-thread runtime (the function, the bench) everything that runs while a call is in
//! flight runs on that thread, the connection tasks the HTTP clients spawn included, so the
//! figure is complete; it then also includes any of the handler's own work that ran
//! concurrently with a call. A span that ends on another thread (a multi-thread runtime
//! moved the task) has no CPU figure and is counted in [`RemoteCalls::cpu_unknown_spans`].
//! A span ends when its call ends or is dropped (a cancelled future), so the meter never
//! stays "in flight".

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use opendal::raw::oio::{self, ReadStreamDyn};
use opendal::raw::{
    Layer, OpCopy, OpCreateDir, OpDelete, OpList, OpPresign, OpRead, OpRename, OpRestore, OpStat,
    OpWrite, RpCreateDir, RpPresign, RpRead, RpRename, RpRestore, RpStat, Service, ServiceInfo,
    Servicer,
};
use opendal::{
    Buffer, BytesRange, Capability, HttpBody, HttpTransport, HttpTransporter, Metadata,
    OperationContext,
};

/// CPU time of the calling thread: user, system and (from the precise clock) total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadCpu {
    /// `CLOCK_THREAD_CPUTIME_ID` (nanosecond resolution).
    pub total: Duration,
    /// `getrusage(RUSAGE_THREAD)` user time (the kernel splits the total by ticks, so
    /// `user + system` is close to, not equal to, `total`).
    pub user: Duration,
    pub system: Duration,
}

impl ThreadCpu {
    /// The calling thread's CPU time so far.
    pub fn now() -> ThreadCpu {
        let (user, system) = thread_rusage();
        ThreadCpu {
            total: thread_cpu_time(),
            user,
            system,
        }
    }

    /// The CPU time from `earlier` to `self` (saturating).
    pub fn since(&self, earlier: &ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            total: self.total.saturating_sub(earlier.total),
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the platform
    // defines. On failure `ts` stays zero.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

#[cfg(target_os = "linux")]
fn thread_rusage() -> (Duration, Duration) {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid and writable; RUSAGE_THREAD asks for the calling thread.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (time(usage.ru_utime), time(usage.ru_stime))
}

#[cfg(not(target_os = "linux"))]
fn thread_rusage() -> (Duration, Duration) {
    (Duration::ZERO, Duration::ZERO)
}

/// Running totals of the remote calls metered so far; subtract two snapshots for what
/// happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteCalls {
    /// SDK operations started (one per `send()`, retries included in it).
    pub sdk_calls: u64,
    /// HTTP requests to the stores.
    pub store_requests: u64,
    /// Wall time with at least one call in flight: the time spent waiting on remote calls.
    pub wait: Duration,
    /// Thread CPU time while at least one call was in flight.
    pub cpu_in_calls: Duration,
    /// Thread CPU time while at least one request was being transmitted and answered.
    pub cpu_in_transmit: Duration,
    /// Spans that ended on another thread than they began on, whose CPU is not counted.
    pub cpu_unknown_spans: u64,
}

impl RemoteCalls {
    pub fn calls(&self) -> u64 {
        self.sdk_calls + self.store_requests
    }

    /// What happened between `earlier` and `self` (saturating).
    pub fn since(&self, earlier: &RemoteCalls) -> RemoteCalls {
        RemoteCalls {
            sdk_calls: self.sdk_calls.saturating_sub(earlier.sdk_calls),
            store_requests: self.store_requests.saturating_sub(earlier.store_requests),
            wait: self.wait.saturating_sub(earlier.wait),
            cpu_in_calls: self.cpu_in_calls.saturating_sub(earlier.cpu_in_calls),
            cpu_in_transmit: self.cpu_in_transmit.saturating_sub(earlier.cpu_in_transmit),
            cpu_unknown_spans: self
                .cpu_unknown_spans
                .saturating_sub(earlier.cpu_unknown_spans),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Call,
    Transmit,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    cpu: Duration,
    thread: ThreadId,
}

impl Mark {
    fn now() -> Mark {
        Mark {
            at: Instant::now(),
            cpu: thread_cpu_time(),
            thread: std::thread::current().id(),
        }
    }
}

/// The calls of one phase in flight, and when the first of them began.
#[derive(Debug, Default)]
struct Busy {
    in_flight: u32,
    since: Option<Mark>,
}

impl Busy {
    fn enter(&mut self, now: Mark) {
        if self.in_flight == 0 {
            self.since = Some(now);
        }
        self.in_flight += 1;
    }

    /// When the last call in flight ended: its busy span's wall time, and its CPU time
    /// when it ended on the thread it began on.
    fn exit(&mut self, now: Mark) -> Option<(Duration, Option<Duration>)> {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight > 0 {
            return None;
        }
        let since = self.since.take()?;
        let cpu = (since.thread == now.thread).then(|| now.cpu.saturating_sub(since.cpu));
        Some((now.at.saturating_duration_since(since.at), cpu))
    }
}

#[derive(Debug, Default)]
struct MeterState {
    calls: Busy,
    transmits: Busy,
    totals: RemoteCalls,
}

/// Meters remote calls; cloning shares the totals. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct RemoteCallMeter {
    state: Arc<Mutex<MeterState>>,
}

impl RemoteCallMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The totals so far.
    pub fn snapshot(&self) -> RemoteCalls {
        self.lock().totals
    }

    /// Runs `call` as one remote call, from its first poll to its end. An SDK call's
    /// interceptor sees it only once the SDK has assembled the operation (runtime plugins,
    /// configuration, endpoint parameters); wrapping the `send()` future counts that part
    /// too, as a store operation's request building is.
    pub async fn call<F: std::future::Future>(&self, call: F) -> F::Output {
        let _span = self.begin(CALL);
        call.await
    }

    /// Marks the start of one cloud SDK call (counted in [`RemoteCalls::sdk_calls`]); the
    /// call lasts until the returned span is dropped.
    pub fn begin_sdk_call(&self) -> RemoteSpan {
        self.count(|t| t.sdk_calls += 1);
        self.begin(CALL)
    }

    /// Marks the start of one attempt's transmission (request sent to answer read); it
    /// lasts until the returned span is dropped.
    pub fn begin_transmit(&self) -> RemoteSpan {
        self.begin(TRANSMIT)
    }

    /// The layer to apply to every store operator.
    pub fn store_layer(&self) -> StoreRequestLayer {
        StoreRequestLayer {
            meter: self.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MeterState> {
        // The state is plain counters: one a panicking thread left behind is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self, phases: &'static [Phase]) -> RemoteSpan {
        let now = Mark::now();
        let mut state = self.lock();
        for phase in phases {
            match phase {
                Phase::Call => state.calls.enter(now),
                Phase::Transmit => state.transmits.enter(now),
            }
        }
        RemoteSpan {
            meter: self.clone(),
            phases,
        }
    }

    fn end(&self, phases: &[Phase]) {
        let now = Mark::now();
        let mut state = self.lock();
        for phase in phases {
            let ended = match phase {
                Phase::Call => state.calls.exit(now),
                Phase::Transmit => state.transmits.exit(now),
            };
            let Some((wall, cpu)) = ended else { continue };
            let totals = &mut state.totals;
            match (phase, cpu) {
                (_, None) => totals.cpu_unknown_spans += 1,
                (Phase::Call, Some(cpu)) => totals.cpu_in_calls += cpu,
                (Phase::Transmit, Some(cpu)) => totals.cpu_in_transmit += cpu,
            }
            if *phase == Phase::Call {
                totals.wait += wall;
            }
        }
    }

    fn count(&self, update: impl FnOnce(&mut RemoteCalls)) {
        update(&mut self.lock().totals);
    }
}

/// One call (or attempt) in flight; ends when dropped.
#[derive(Debug)]
#[must_use = "the call ends when its span is dropped"]
pub struct RemoteSpan {
    meter: RemoteCallMeter,
    phases: &'static [Phase],
}

impl Drop for RemoteSpan {
    fn drop(&mut self) {
        self.meter.end(self.phases);
    }
}

const CALL: &[Phase] = &[Phase::Call];
const TRANSMIT: &[Phase] = &[Phase::Transmit];
const REQUEST: &[Phase] = &[Phase::Call, Phase::Transmit];

/// Meters every operation and HTTP request of the store operator it is applied to
/// (`operator.layer(…)`): it wraps the operator's service (calls) and its HTTP transport
/// (transmissions).
#[derive(Debug, Clone)]
pub struct StoreRequestLayer {
    meter: RemoteCallMeter,
}

impl Layer for StoreRequestLayer {
    fn apply_service(&self, srv: Servicer) -> Servicer {
        Arc::new(MeteredService {
            inner: srv,
            meter: self.meter.clone(),
        })
    }

    fn apply_context(&self, _srv: Servicer, inner: OperationContext) -> OperationContext {
        let transport = MeteredTransport {
            inner: inner.http_transport().clone(),
            meter: self.meter.clone(),
        };
        inner.with_http_transport(HttpTransporter::new(transport))
    }
}

/// A store's operations, each metered as a call while opendal works on it. Readers, writers,
/// listers and deleters are metered per method, so the handler's own work between two
/// methods (between two pages of a listing, say) is not counted as a call.
#[derive(Debug)]
struct MeteredService {
    inner: Servicer,
    meter: RemoteCallMeter,
}

impl MeteredService {
    fn wrap<T>(&self, inner: T) -> Metered<T> {
        Metered {
            inner,
            meter: self.meter.clone(),
        }
    }
}

impl Service for MeteredService {
    type Reader = Metered<oio::Reader>;
    type Writer = Metered<oio::Writer>;
    type Lister = Metered<oio::Lister>;
    type Deleter = Metered<oio::Deleter>;
    // Not used by Escher; still metered per HTTP request by the transport.
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> opendal::Result<RpCreateDir> {
        let _call = self.meter.begin(CALL);
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpStat,
    ) -> opendal::Result<RpStat> {
        let _call = self.meter.begin(CALL);
        self.inner.stat(ctx, path, args).await
    }

    fn read(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRead,
    ) -> opendal::Result<Self::Reader> {
        self.inner.read(ctx, path, args).map(|r| self.wrap(r))
    }

    fn write(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpWrite,
    ) -> opendal::Result<Self::Writer> {
        self.inner.write(ctx, path, args).map(|w| self.wrap(w))
    }

    fn delete(&self, ctx: &OperationContext) -> opendal::Result<Self::Deleter> {
        self.inner.delete(ctx).map(|d| self.wrap(d))
    }

    fn list(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpList,
    ) -> opendal::Result<Self::Lister> {
        self.inner.list(ctx, path, args).map(|l| self.wrap(l))
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> opendal::Result<Self::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(
        &self,
        ctx: &OperationContext,
        to: &str,
        args: opendal::raw::OpCompose,
    ) -> opendal::Result<Self::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> opendal::Result<RpRename> {
        let _call = self.meter.begin(CALL);
        self.inner.rename(ctx, from, to, args).await
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> opendal::Result<RpRestore> {
        let _call = self.meter.begin(CALL);
        self.inner.restore(ctx, path, args).await
    }

    // Signing a URL locally: no remote call.
    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> opendal::Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

/// A reader, writer, lister or deleter whose every method is metered as a call.
struct Metered<T> {
    inner: T,
    meter: RemoteCallMeter,
}

impl<T: oio::Read> oio::Read for Metered<T> {
    async fn open(&self, range: BytesRange) -> opendal::Result<(RpRead, Box<dyn ReadStreamDyn>)> {
        let _call = self.meter.begin(CALL);
        let (rp, stream) = self.inner.open(range).await?;
        let stream: Box<dyn ReadStreamDyn> = Box::new(Metered {
            inner: stream,
            meter: self.meter.clone(),
        });
        Ok((rp, stream))
    }

    async fn read(&self, range: BytesRange) -> opendal::Result<(RpRead, Buffer)> {
        let _call = self.meter.begin(CALL);
        self.inner.read(range).await
    }
}

impl<T: oio::ReadStream> oio::ReadStream for Metered<T> {
    async fn read(&mut self) -> opendal::Result<Buffer> {
        let _call = self.meter.begin(CALL);
        self.inner.read().await
    }

    async fn read_all(&mut self) -> opendal::Result<Buffer> {
        let _call = self.meter.begin(CALL);
        self.inner.read_all().await
    }
}

impl<T: oio::Write> oio::Write for Metered<T> {
    async fn write(&mut self, bs: Buffer) -> opendal::Result<()> {
        let _call = self.meter.begin(CALL);
        self.inner.write(bs).await
    }

    async fn copy_from(
        &mut self,
        path: &str,
        args: OpRead,
        range: BytesRange,
    ) -> opendal::Result<()> {
        let _call = self.meter.begin(CALL);
        self.inner.copy_from(path, args, range).await
    }

    async fn close(&mut self) -> opendal::Result<Metadata> {
        let _call = self.meter.begin(CALL);
        self.inner.close().await
    }

    async fn abort(&mut self) -> opendal::Result<()> {
        let _call = self.meter.begin(CALL);
        self.inner.abort().await
    }
}

impl<T: oio::List> oio::List for Metered<T> {
    async fn next(&mut self) -> opendal::Result<Option<opendal::raw::oio::Entry>> {
        let _call = self.meter.begin(CALL);
        self.inner.next().await
    }
}

impl<T: oio::Delete> oio::Delete for Metered<T> {
    async fn delete(&mut self, path: &str, args: OpDelete) -> opendal::Result<()> {
        let _call = self.meter.begin(CALL);
        self.inner.delete(path, args).await
    }

    async fn close(&mut self) -> opendal::Result<()> {
        let _call = self.meter.begin(CALL);
        self.inner.close().await
    }
}

struct MeteredTransport {
    inner: HttpTransporter,
    meter: RemoteCallMeter,
}

impl HttpTransport for MeteredTransport {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        self.meter.count(|t| t.store_requests += 1);
        let span = self.meter.begin(REQUEST);
        let response = self.inner.fetch(req).await?;
        // The request lasts until its body is read (or dropped).
        Ok(response.map(|body| {
            body.map_inner(|stream| {
                Box::new(MeteredBody {
                    stream,
                    span: Some(span),
                })
            })
        }))
    }
}

type BodyStream =
    Box<dyn futures_core::Stream<Item = opendal::Result<Buffer>> + Send + Sync + Unpin + 'static>;

/// A response body that ends its request's span when it is read to the end or dropped.
struct MeteredBody {
    stream: BodyStream,
    span: Option<RemoteSpan>,
}

impl futures_core::Stream for MeteredBody {
    type Item = opendal::Result<Buffer>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let polled = std::pin::Pin::new(&mut self.stream).poll_next(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.span = None;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burn(cpu: Duration) {
        let start = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time().saturating_sub(start) < cpu {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn thread_cpu_counts_work_not_sleep() {
        let wall = Instant::now();
        let before = ThreadCpu::now();
        burn(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        let used = ThreadCpu::now().since(&before);
        let wall = wall.elapsed();
        assert!(used.total >= Duration::from_millis(20), "{used:?}");
        // Sleeping accrues no CPU time, however busy the machine is.
        assert!(
            used.total + Duration::from_millis(30) <= wall,
            "{used:?} in {wall:?}"
        );
        assert!(
            used.user + used.system >= Duration::from_millis(10),
            "{used:?}"
        );
    }

    #[test]
    fn overlapping_calls_count_once_and_cpu_outside_them_is_not_counted() {
        let meter = RemoteCallMeter::new();
        let cpu = ThreadCpu::now();
        burn(Duration::from_millis(5));
        let wall = Instant::now();
        let first = meter.begin(CALL);
        let second = meter.begin(CALL);
        burn(Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(20));
        drop(first);
        drop(second);
        let wall = wall.elapsed();
        burn(Duration::from_millis(5));
        let cpu = ThreadCpu::now().since(&cpu);
        let totals = meter.snapshot();
        assert!(
            totals.cpu_in_calls >= Duration::from_millis(10),
            "{totals:?}"
        );
        // Counted once although two calls overlapped, and not the 10 ms burnt outside.
        assert!(
            totals.cpu_in_calls + Duration::from_millis(10) <= cpu.total,
            "{totals:?}, thread {cpu:?}"
        );
        assert!(totals.wait >= Duration::from_millis(30), "{totals:?}");
        assert!(totals.wait <= wall, "{totals:?} in {wall:?}");
        assert_eq!(totals.cpu_in_transmit, Duration::ZERO);
        assert_eq!(totals.cpu_unknown_spans, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wrapped_call_counts_from_its_first_poll() {
        let meter = RemoteCallMeter::new();
        // Built, not yet polled: nothing runs, nothing is counted.
        let call = meter.call(async {
            burn(Duration::from_millis(5));
            tokio::time::sleep(Duration::from_millis(5)).await;
        });
        burn(Duration::from_millis(5));
        assert_eq!(meter.snapshot().cpu_in_calls, Duration::ZERO);
        call.await;
        let totals = meter.snapshot();
        assert!(
            totals.cpu_in_calls >= Duration::from_millis(5),
            "{totals:?}"
        );
        assert!(
            totals.cpu_in_calls < Duration::from_millis(10),
            "{totals:?}"
        );
        assert!(totals.wait >= Duration::from_millis(10), "{totals:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn store_operations_are_calls_and_the_work_between_them_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let meter = RemoteCallMeter::new();
        let store = escher_core::store::open(&format!("fs://{}", dir.path().display()))
            .expect("fs store")
            .layer(meter.store_layer());
        let cpu = ThreadCpu::now();
        store
            .write("day/record.json", vec![7u8; 1 << 20])
            .await
            .expect("write");
        let after_write = meter.snapshot();
        burn(Duration::from_millis(10));
        let read = store.read("day/record.json").await.expect("read");
        assert_eq!(read.len(), 1 << 20);
        let listed = store.list("day/").await.expect("list");
        assert!(listed.iter().any(|e| e.path() == "day/record.json"));
        store.stat("day/record.json").await.expect("stat");
        store.delete("day/record.json").await.expect("delete");
        let cpu = ThreadCpu::now().since(&cpu);
        let totals = meter.snapshot();
        assert!(after_write.wait > Duration::ZERO, "{after_write:?}");
        assert!(after_write.cpu_in_calls > Duration::ZERO, "{after_write:?}");
        assert!(totals.wait > after_write.wait, "{totals:?}");
        // The 10 ms burnt between two operations is the handler's own.
        assert!(
            totals.cpu_in_calls + Duration::from_millis(10) <= cpu.total,
            "{totals:?}, thread {cpu:?}"
        );
        // A file system store makes no HTTP request.
        assert_eq!(totals.store_requests, 0, "{totals:?}");
        assert_eq!(totals.cpu_unknown_spans, 0, "{totals:?}");
    }

    #[test]
    fn a_span_ended_on_another_thread_has_no_cpu_figure() {
        let meter = RemoteCallMeter::new();
        let span = meter.begin(REQUEST);
        std::thread::spawn(move || drop(span))
            .join()
            .expect("thread");
        let totals = meter.snapshot();
        assert_eq!(totals.cpu_unknown_spans, 2, "{totals:?}");
        assert_eq!(totals.cpu_in_calls, Duration::ZERO);
    }

    #[test]
    fn differences_of_snapshots_are_what_happened_in_between() {
        let meter = RemoteCallMeter::new();
        drop(meter.begin(CALL));
        meter.count(|t| t.sdk_calls += 1);
        let before = meter.snapshot();
        meter.count(|t| t.store_requests += 2);
        drop(meter.begin(CALL));
        let delta = meter.snapshot().since(&before);
        assert_eq!(
            (delta.sdk_calls, delta.store_requests, delta.calls()),
            (0, 2, 2)
        );
        assert!(delta.wait <= meter.snapshot().wait);
    }
}
