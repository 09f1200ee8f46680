//! An Azure Blob store opened with a token source (a Function's managed identity) signs its
//! requests with that bearer token, as Azure Storage expects from an identity with a data
//! role; no account key is involved.

use std::sync::Arc;

use async_trait::async_trait;
use escher_core::store::{StorageTokenSource, StoreLocation};
use escher_test_support::http::read_request;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[derive(Debug)]
struct Identity;

#[async_trait]
impl StorageTokenSource for Identity {
    async fn storage_token(&self) -> Result<(String, i64), String> {
        Ok((
            "identity-token-1".into(),
            chrono::Utc::now().timestamp() + 3600,
        ))
    }
}

#[tokio::test]
async fn blob_writes_carry_the_identity_token() {
    if std::env::var("AZURE_STORAGE_KEY").is_ok() {
        println!("skipped: AZURE_STORAGE_KEY is set, and a key takes precedence over tokens");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("a request");
        let (head, _) = read_request(&mut socket).await;
        let _ = socket
            .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
            .await;
        head
    });
    let location: StoreLocation = format!(
        "azblob://state/escher?account=escherstate&endpoint=http://127.0.0.1:{port}/escherstate"
    )
    .parse()
    .expect("a store URI");
    let store = location
        .operator_with(Some(Arc::new(Identity)))
        .expect("opened");
    let _ = store.write("markers/e1.json", "{}").await;
    let head = server.await.expect("the server ran").to_ascii_lowercase();
    assert!(
        head.starts_with("put /escherstate/state/escher/markers/e1.json"),
        "{head}"
    );
    assert!(
        head.contains("authorization: bearer identity-token-1"),
        "{head}"
    );
}
