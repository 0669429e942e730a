//! The storage contract suite, run against both engines: embedded (redb in a temporary
//! directory) and DynamoDB (the emulator at `HERALD_TEST_AWS_ENDPOINT`), each test on a store
//! of its own.

use herald_shared::store::contract::Subject;
use herald_shared::store::dynamodb::{DynamoStore, create_table};
use herald_shared::store::embedded::Embedded;

async fn embedded() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Embedded::open(dir.path().join("herald.redb")).expect("open embedded store");
    Subject::new(store, dir)
}

async fn dynamodb() -> Subject {
    let config = herald_testing::emulator::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = herald_testing::emulator::unique("herald-store");
    create_table(&client, &table)
        .await
        .expect("create table on the emulator");
    Subject::new(DynamoStore::new(client, &table), table)
}

mod embedded_engine {
    herald_shared::store_contract_tests!(super::embedded());
}

mod dynamodb_engine {
    herald_shared::store_contract_tests!(
        super::dynamodb(),
        concurrency_ignored = "moto 5 checks a condition and writes in two steps without a lock, so \
            concurrent conditional writes race on the emulator; DynamoDB serialises writes per item"
    );
}

mod in_memory_engine {
    use herald_shared::store::contract::Subject;
    use herald_shared::store::embedded::Embedded;

    async fn in_memory() -> Subject {
        Subject::new(Embedded::in_memory().expect("in-memory store"), ())
    }

    herald_shared::store_contract_tests!(in_memory());
}
