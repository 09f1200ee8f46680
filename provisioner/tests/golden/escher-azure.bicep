// 'Escher Extend (acme-escher): the function that handles alerts and runs the nightly scan, its stores, secrets, notifications and triggers.'
// Rendered by `escher-provision render --cloud azure`; deploy the ARM template beside it
// (escher-azure.json) with `escher-provision extend`, or this file to the resource group.
targetScope = 'resourceGroup'

@description('Region of every regional resource (escher.toml [azure] location).')
param location string = resourceGroup().location

@description('Second deployment only: the Event Grid subscriptions and the alert webhook need the function package deployed first.')
param createEventSubscriptions bool = false

@description('Second deployment only: locks the audit account\'s retention policy (irreversible).')
param lockAuditRetention bool = false

@description('SHA-256 of the function package `extend` publishes (a new package changes the app settings).')
param packageSha256 string = ''

@description('The state account: escst and the resource group\'s uniqueString (the name the group\'s earlier deployments gave it).')
@minLength(3)
@maxLength(24)
param stateStorageAccountName string = 'escstvkygrhdfkwaaq'

@description('The audit account: escau and the resource group\'s uniqueString (the name the group\'s earlier deployments gave it).')
@minLength(3)
@maxLength(24)
param auditStorageAccountName string = 'escauvkygrhdfkwaaq'

@description('Public IPv4 addresses (or CIDR ranges) of the machines that run escher-provision.')
param operatorAddresses array = []

var namePrefix = 'acme-escher'
var suffix = uniqueString(resourceGroup().id)
var vaultName = 'escher-${suffix}'
var functionAppName = '${namePrefix}-${suffix}'
var storageAddresses = [for address in operatorAddresses: {
  value: address
  action: 'Allow'
}]
var vaultAddresses = [for address in operatorAddresses: {
  value: address
}]
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var deploymentContainer = 'app-package'

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 90
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-insights'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    RetentionInDays: 90
  }
}

resource network 'Microsoft.Network/virtualNetworks@2023-05-01' = {
  name: '${namePrefix}-network'
  location: location
  properties: {
    addressSpace: {
      addressPrefixes: [
        '10.70.0.0/24'
      ]
    }
    subnets: [
      {
        name: 'functions'
        properties: {
          addressPrefix: '10.70.0.0/26'
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          serviceEndpoints: [
            {
              service: 'Microsoft.Storage'
            }
            {
              service: 'Microsoft.KeyVault'
            }
          ]
        }
      }
    ]
  }
}

var subnetId = resourceId('Microsoft.Network/virtualNetworks/subnets', network.name, 'functions')

resource stateAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: stateStorageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_GRS'
  }
  dependsOn: [
    network
  ]
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
      virtualNetworkRules: [
        {
          id: subnetId
          action: 'Allow'
        }
      ]
      ipRules: storageAddresses
    }
  }
}

resource stateBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: stateAccount
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: 30
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 30
    }
  }
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: stateBlobs
  name: 'state'
  properties: {
    publicAccess: 'None'
  }
}

resource approvalsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: stateBlobs
  name: 'approvals'
  properties: {
    publicAccess: 'None'
  }
}

resource reportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: stateBlobs
  name: 'reports'
  properties: {
    publicAccess: 'None'
  }
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: stateBlobs
  name: 'app-package'
  properties: {
    publicAccess: 'None'
  }
}

resource auditAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: auditStorageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_GRS'
  }
  dependsOn: [
    network
  ]
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
      virtualNetworkRules: [
        {
          id: subnetId
          action: 'Allow'
        }
      ]
      ipRules: storageAddresses
    }
    immutableStorageWithVersioning: {
      enabled: true
      immutabilityPolicy: {
        immutabilityPeriodSinceCreationInDays: 730
        allowProtectedAppendWrites: false
        state: lockAuditRetention ? 'Locked' : 'Unlocked'
      }
    }
  }
}

resource auditBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: auditAccount
  name: 'default'
  properties: {
    isVersioningEnabled: true
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 30
    }
  }
}

resource auditContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: auditBlobs
  name: 'audit'
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: {
      enabled: true
    }
  }
}

// The vault keeps its public endpoint, closed by its firewall (default deny; only the
// function's subnet, through a service endpoint, and the operator addresses pass): Flex
// Consumption reaches it without a private endpoint, and escher-provision writes secrets from
// the operator's machine.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  dependsOn: [
    network
  ]
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
      virtualNetworkRules: [
        {
          id: subnetId
        }
      ]
      ipRules: vaultAddresses
    }
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${namePrefix}-plan'
  location: location
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales by instance count (functionAppConfig.scaleAndConcurrency), not by siteConfig.numberOfWorkers
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; the platform restarts an instance whose custom handler stops answering
  // checkov:skip=CKV_AZURE_222: Event Grid and Azure Monitor action groups deliver over the public endpoint; every trigger needs a function key or Event Grid's own delivery, and httpsOnly is set
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  dependsOn: [
    packageContainer
  ]
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Asked for during the TLS handshake and forwarded when sent; Optional lets Event Grid and
    // action groups, which send none, through as before (a function key or Event Grid's own
    // delivery authenticates them), and needs no TLS renegotiation, so HTTP/2 and TLS 1.3 work.
    clientCertEnabled: true
    clientCertMode: 'Optional'
    virtualNetworkSubnetId: subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: stateAccount.name
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: insights.properties.ConnectionString
        }
        {
          name: 'ESCHER_STATE_URI'
          value: 'azblob://state?account=${stateAccount.name}'
        }
        {
          name: 'ESCHER_APPROVALS_URI'
          value: 'azblob://approvals?account=${stateAccount.name}'
        }
        {
          name: 'ESCHER_AUDIT_URI'
          value: 'azblob://audit?account=${auditAccount.name}'
        }
        {
          name: 'ESCHER_SECRETS_PREFIX'
          value: '${vault.properties.vaultUri}secrets/'
        }
        {
          name: 'ESCHER_CRITICAL_TOPIC'
          value: 'critical'
        }
        {
          name: 'ESCHER_HIGH_TOPIC'
          value: 'high'
        }
        {
          name: 'ESCHER_AZURE_SUBSCRIPTION'
          value: subscription().subscriptionId
        }
        {
          name: 'ESCHER_TIME_ZONE'
          value: 'Europe/Berlin'
        }
        {
          name: 'ESCHER_SCAN_TIME'
          value: '03:30'
        }
        {
          name: 'ESCHER_PACKAGE_SHA256'
          value: packageSha256
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stateAccount.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: 40
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

resource stateDataRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: stateAccount
  name: guid(stateAccount.id, functionApp.id, blobDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'Escher Extend\'s function: its state, approvals, reports and package (and the Functions host\'s own storage).'
  }
}

resource auditDataRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: auditAccount
  name: guid(auditAccount.id, functionApp.id, blobDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'Escher Extend\'s function: writes audit records (the locked retention policy keeps them).'
  }
}

resource vaultSecretsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, functionApp.id, keyVaultSecretsUser)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'Escher Extend\'s function: reads webhook secrets and the other clouds\' credentials.'
  }
}

resource remediationRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, resourceGroup().id, 'escher-remediation')
  properties: {
    roleName: 'Escher Extend remediation acme-escher (${resourceGroup().name})'
    description: 'Escher Extend (acme-escher): exactly the actions its remediations and checks call, nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Compute/virtualMachines/deallocate/action'
          'Microsoft.Network/networkSecurityGroups/securityRules/delete'
          'Microsoft.Storage/storageAccounts/write'
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// The role's assignment at the subscription: a resource-group file reaches the subscription
// only through a nested deployment (the ARM template does the same).
resource subscriptionRole 'Microsoft.Resources/deployments@2022-09-01' = {
  name: '${namePrefix}-subscription-role'
  subscriptionId: subscription().subscriptionId
  location: location
  properties: {
    mode: 'Incremental'
    expressionEvaluationOptions: {
      scope: 'inner'
    }
    parameters: {
      principalId: {
        value: functionApp.identity.principalId
      }
      roleDefinitionId: {
        value: remediationRole.id
      }
    }
    template: {
      '$schema': 'https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#'
      contentVersion: '1.0.0.0'
      parameters: {
        principalId: {
          type: 'string'
        }
        roleDefinitionId: {
          type: 'string'
        }
      }
      resources: [
        {
          // remediationRoleAssignment
          type: 'Microsoft.Authorization/roleAssignments'
          apiVersion: '2022-04-01'
          name: '[guid(subscription().id, parameters(\'principalId\'), parameters(\'roleDefinitionId\'))]'
          properties: {
            roleDefinitionId: '[parameters(\'roleDefinitionId\')]'
            principalId: '[parameters(\'principalId\')]'
            principalType: 'ServicePrincipal'
            description: 'Escher Extend\'s function: the remediations\' permissions across the subscription.'
          }
        }
      ]
    }
  }
}

resource subscriptionEvents 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: '${namePrefix}-subscription-events'
  location: 'global'
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

resource subscriptionEventsToFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (createEventSubscriptions) {
  parent: subscriptionEvents
  name: 'to-function'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/events'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Resources.ResourceWriteSuccess'
        'Microsoft.Resources.ResourceDeleteSuccess'
      ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

resource policyStates 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: '${namePrefix}-policy-states'
  location: 'global'
  properties: {
    source: subscription().id
    topicType: 'Microsoft.PolicyInsights.PolicyStates'
  }
}

resource policyStatesToFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (createEventSubscriptions) {
  parent: policyStates
  name: 'to-function'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/events'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.PolicyInsights.PolicyStateCreated'
        'Microsoft.PolicyInsights.PolicyStateChanged'
      ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

resource alertActionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (createEventSubscriptions) {
  name: '${namePrefix}-alerts'
  location: 'Global'
  properties: {
    groupShortName: 'escher'
    enabled: true
    webhookReceivers: [
      {
        name: 'escher-alert-function'
        serviceUri: 'https://${functionApp.properties.defaultHostName}/api/alert?code=${listKeys('${functionApp.id}/host/default', '2024-04-01').functionKeys.default}'
        useCommonAlertSchema: true
      }
    ]
  }
}

resource criticalGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-critical'
  location: 'Global'
  properties: {
    groupShortName: 'escher-crit'
    enabled: true
    emailReceivers: [
      {
        emailAddress: 'oncall@example.com'
        name: 'email-d876c66bad'
        useCommonAlertSchema: true
      }
      {
        emailAddress: 'cto@example.com'
        name: 'email-0006e1aaed'
        useCommonAlertSchema: true
      }
    ]
    smsReceivers: [
      {
        countryCode: '49'
        name: 'sms-536afd523e'
        phoneNumber: '15112345678'
      }
    ]
  }
}

resource criticalNotices 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-critical-notices'
  location: location
  kind: 'LogAlert'
  properties: {
    displayName: 'Escher Extend: CRITICAL'
    description: 'A CRITICAL event or a failed remediation: Escher\'s notice, to e-mail and SMS within minutes.'
    severity: 0
    enabled: true
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT1M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'customEvents | where name == "EscherNotice" and tostring(customDimensions.severity) == "critical" | extend subject = tostring(customDimensions.subject), resource = tostring(customDimensions.resource) | project timestamp, subject, resource'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'subject'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        criticalGroup.id
      ]
    }
  }
}

resource highGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-high'
  location: 'Global'
  properties: {
    groupShortName: 'escher-high'
    enabled: true
    emailReceivers: [
      {
        emailAddress: 'ops@example.com'
        name: 'email-af3c82544f'
        useCommonAlertSchema: true
      }
    ]
    smsReceivers: []
  }
}

resource highNotices 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-high-notices'
  location: location
  kind: 'LogAlert'
  properties: {
    displayName: 'Escher Extend: HIGH'
    description: 'A HIGH event or a remediation report: Escher\'s notice, to e-mail.'
    severity: 1
    enabled: true
    scopes: [
      insights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'customEvents | where name == "EscherNotice" and tostring(customDimensions.severity) == "high" | extend subject = tostring(customDimensions.subject), resource = tostring(customDimensions.resource) | project timestamp, subject, resource'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'subject'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        highGroup.id
      ]
    }
  }
}

output functionAppName string = functionApp.name
output stateAccountName string = stateAccount.name
output auditAccountName string = auditAccount.name
output vaultUri string = vault.properties.vaultUri
output deploymentContainerUrl string = '${stateAccount.properties.primaryEndpoints.blob}${deploymentContainer}'
