//! The AWS SDK's side of the remote-call meter (`escher_runtime::meter`): an interceptor on
//! every SDK client marks each call from `read_before_execution` to `read_after_execution`
//! and each attempt's transmission from `read_before_transmit` to `read_after_transmit`, so
//! the handler's own CPU can be told from the SDK's. The handler's own calls are also
//! wrapped in [`RemoteCallMeter::call`] from their `send()` (the SDK's assembling of the
//! operation before the interceptors run is part of the call).

use aws_sdk_s3::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use escher_runtime::meter::{RemoteCallMeter, RemoteSpan};

/// An SDK client whose every call `meter` counts: `metered_client!(aws_sdk_ec2, &sdk_config,
/// &meter)`, or with a configuration builder of its own (`builder: …`).
macro_rules! metered_client {
    ($sdk:ident, builder: $builder:expr, $meter:expr) => {
        $sdk::Client::from_conf(
            $builder
                .interceptor($crate::sdk_meter::sdk_interceptor($meter))
                .build(),
        )
    };
    ($sdk:ident, $config:expr, $meter:expr) => {
        metered_client!($sdk, builder: $sdk::config::Builder::from($config), $meter)
    };
}
pub(crate) use metered_client;

/// The interceptor to register on every SDK client's configuration.
pub fn sdk_interceptor(meter: &RemoteCallMeter) -> SdkCallInterceptor {
    SdkCallInterceptor {
        meter: meter.clone(),
    }
}

/// The span of one SDK call, kept in the call's config bag: dropped at the call's end, or
/// with the bag when the call's future is dropped.
#[derive(Debug)]
struct SdkCallSpan(#[allow(dead_code)] RemoteSpan);

impl Storable for SdkCallSpan {
    type Storer = StoreReplace<Self>;
}

/// The span of one SDK attempt's transmission.
#[derive(Debug)]
struct SdkTransmitSpan(#[allow(dead_code)] RemoteSpan);

impl Storable for SdkTransmitSpan {
    type Storer = StoreReplace<Self>;
}

/// Meters every call of the SDK client it is registered on (`.interceptor(…)` on the
/// client's configuration builder).
#[derive(Debug, Clone)]
pub struct SdkCallInterceptor {
    meter: RemoteCallMeter,
}

impl Intercept for SdkCallInterceptor {
    fn name(&self) -> &'static str {
        "RemoteCallMeter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(SdkCallSpan(self.meter.begin_sdk_call()));
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(SdkTransmitSpan(self.meter.begin_transmit()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Replacing the stored span drops it, which ends it.
        cfg.interceptor_state().unset::<SdkTransmitSpan>();
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // An attempt whose transmission failed never reached `read_after_transmit`.
        cfg.interceptor_state().unset::<SdkTransmitSpan>();
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().unset::<SdkTransmitSpan>();
        cfg.interceptor_state().unset::<SdkCallSpan>();
        Ok(())
    }
}
